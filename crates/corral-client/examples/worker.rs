//! A worker that takes a lock and writes under its token.
//!
//! It takes the lock `invoice/next`, reads the next invoice number from the
//! cluster's fenced store, and writes it back incremented, fenced by its
//! token: a worker that lost its lease while paused is refused by the
//! cluster, not trusted.
//!
//! Run it against `corral dev`:
//! `cargo run -p corral-client --example worker -- 127.0.0.1:7101,127.0.0.1:7102`

use std::time::Duration;

use corral_client::{Client, Error, Fence, LockName};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let endpoints = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103".into());
    let client = Client::new(endpoints.split(','))?;
    let lease = client.grant_lease(Duration::from_secs(10)).await?;
    let lock = LockName::new("invoice/next")?;
    let guard = lease.lock_timeout(&lock, Duration::from_secs(30)).await?;
    let token = guard.fencing_token();
    println!("holding {lock} under token {token}");

    let key = LockName::new("invoice/next-number")?;
    let next: u64 = match client.kv_get(&key).await? {
        Some(record) => record.value.parse()?,
        None => 1,
    };
    let fence = Fence {
        lock: lock.clone(),
        fencing_token: token,
    };
    let value = (next + 1).to_string();
    tokio::select! {
        reason = lease.lost() => anyhow::bail!("lease lost before the write: {reason}"),
        written = client.kv_put(&key, &value, fence) => match written {
            Ok(_) => println!("issued invoice number {next}"),
            Err(Error::Refused { message, .. }) => anyhow::bail!("refused as a stale owner: {message}"),
            Err(e) => return Err(e.into()),
        },
    }
    guard.release().await?;
    lease.revoke().await?;
    Ok(())
}
