use super::*;

#[test]
fn completed_keeps_its_fields() {
    let op = Operation::completed(7, 10, 20, "in", "out").expect("valid");
    assert_eq!(op.client(), 7);
    assert_eq!(op.invoke(), 10);
    assert_eq!(op.ret(), Some(20));
    assert_eq!(*op.input(), "in");
    assert_eq!(op.output(), Some(&"out"));
    assert!(op.is_completed());
}

#[test]
fn instant_operation_is_valid() {
    assert!(Operation::completed(1, 5, 5, (), ()).is_ok());
}

#[test]
fn return_before_invoke_is_an_error() {
    let err = Operation::completed(3, 10, 9, (), ()).expect_err("invalid");
    assert_eq!(
        err,
        HistoryError::ReturnBeforeInvoke {
            client: 3,
            invoke: 10,
            ret: 9
        }
    );
    assert!(err.to_string().contains("before it was invoked"));
}

#[test]
fn unknown_has_neither_return_nor_output() {
    let op: Operation<&str, ()> = Operation::unknown(2, 4, "in");
    assert_eq!(op.ret(), None);
    assert_eq!(op.output(), None);
    assert!(!op.is_completed());
}

#[test]
fn precedence_is_strict_and_unknown_precedes_nothing() {
    let a = Operation::completed(1, 0, 10, (), ()).expect("valid");
    let b = Operation::completed(2, 11, 12, (), ()).expect("valid");
    let c = Operation::completed(3, 10, 12, (), ()).expect("valid");
    let u: Operation<(), ()> = Operation::unknown(4, 0, ());
    assert!(a.precedes(&b));
    assert!(!b.precedes(&a));
    assert!(!a.precedes(&c), "touching at one instant is concurrent");
    assert!(!u.precedes(&b));
}
