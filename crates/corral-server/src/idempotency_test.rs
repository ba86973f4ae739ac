use super::scope;

/// The scopes are in remembered fingerprints on disk: a tidy-up that
/// changed one (say, revoke's to its `{id}` path) would make every
/// retry across an upgrade a mismatch. This pins their bytes.
#[test]
fn scopes_keep_their_bytes() {
    let pinned = [
        (scope::GRANT_LEASE, "POST /v1/leases"),
        (scope::REVOKE_LEASE, "DELETE /v1/leases"),
        (scope::ACQUIRE, "POST /v1/locks/acquire"),
        (scope::ACQUIRE_ALL, "POST /v1/locks/acquire-all"),
        (scope::RELEASE, "POST /v1/locks/release"),
        (scope::ACQUIRE_PERMITS, "POST /v1/semaphores/acquire"),
        (scope::RELEASE_PERMITS, "POST /v1/semaphores/release"),
        (scope::CAMPAIGN, "POST /v1/elections/campaign"),
        (scope::PROCLAIM, "POST /v1/elections/proclaim"),
        (scope::RESIGN, "POST /v1/elections/resign"),
        (scope::KV_PUT, "PUT /v1/kv"),
        (scope::KV_DELETE, "DELETE /v1/kv"),
    ];
    for (scope, bytes) in pinned {
        assert_eq!(scope, bytes);
    }
}
