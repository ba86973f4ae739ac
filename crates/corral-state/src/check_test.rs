use super::*;

fn names(list: &[&str]) -> Vec<LockName> {
    list.iter()
        .map(|n| LockName::new(*n).expect("a valid name"))
        .collect()
}

#[test]
fn permits_are_from_one_to_the_limit() {
    assert_eq!(check_permits(1, 1), Ok(()));
    assert_eq!(
        check_permits(SEMAPHORE_LIMIT_MAX, SEMAPHORE_LIMIT_MAX),
        Ok(())
    );
    assert_eq!(
        check_permits(0, 1),
        Err(FieldError::SemaphoreLimit { limit: 0 })
    );
    let over = SEMAPHORE_LIMIT_MAX + 1;
    assert_eq!(
        check_permits(over, 1),
        Err(FieldError::SemaphoreLimit { limit: over })
    );
    assert_eq!(
        check_permits(3, 4).map_err(|e| e.to_string()),
        Err("field `permits`: must be from 1 to the limit 3, got 4".into())
    );
    assert_eq!(
        check_permits(3, 0),
        Err(FieldError::Permits {
            limit: 3,
            permits: 0
        })
    );
}

#[test]
fn acquire_all_names_are_distinct_and_bounded() {
    let set = check_acquire_all_names(&names(&["b", "a"])).expect("two names");
    assert_eq!(set.into_iter().collect::<Vec<_>>(), names(&["a", "b"]));
    assert_eq!(
        check_acquire_all_names(&[]),
        Err(FieldError::NamesCount { count: 0 })
    );
    let many: Vec<String> = (0..=ACQUIRE_ALL_NAMES_MAX)
        .map(|i| format!("n{i}"))
        .collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(
        check_acquire_all_names(&names(&many)),
        Err(FieldError::NamesCount {
            count: ACQUIRE_ALL_NAMES_MAX + 1
        })
    );
    assert_eq!(
        check_acquire_all_names(&names(&["a", "b", "a"])).map_err(|e| e.to_string()),
        Err("field `names`: a is given twice".into())
    );
}

#[test]
fn election_values_are_bounded_in_bytes() {
    assert_eq!(
        check_election_value(&"v".repeat(ELECTION_VALUE_BYTES_MAX)),
        Ok(())
    );
    let long = "é".repeat(ELECTION_VALUE_BYTES_MAX / 2 + 1);
    assert_eq!(
        check_election_value(&long),
        Err(FieldError::ElectionValue { bytes: long.len() })
    );
}
