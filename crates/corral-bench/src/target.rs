//! The services under load: corral's API v1 and etcd's JSON gateway, both
//! over one pooled HTTP/1.1 client.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use corral_api::{LoadReport, LoadRequest};
use serde_json::{json, Value};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The request did not get an answer.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The service answered with an error status.
    #[error("refused with {status}: {body}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The answer's body.
        body: String,
    },
    /// The answer lacked a field it must have.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

/// A lease on either service.
#[derive(Clone, Debug)]
pub struct Lease {
    /// corral's 32 hex digits, or etcd's decimal lease id.
    pub id: String,
}

/// A held lock: what releasing it takes.
#[derive(Clone, Debug)]
pub struct Held {
    /// corral: the lock name; etcd: the lock's key (base64), which
    /// `unlock` takes.
    key: String,
    /// corral's fencing token, or etcd's revision of the lock key.
    pub token: u64,
}

/// A lock service under load.
#[derive(Clone, Debug)]
pub enum Target {
    /// A corral cluster.
    Corral {
        /// Base URLs of its nodes.
        endpoints: Vec<String>,
        /// The shared HTTP client.
        http: reqwest::Client,
    },
    /// An etcd cluster, through its JSON gateway.
    Etcd {
        /// Base URLs of its members' client ports.
        endpoints: Vec<String>,
        /// The shared HTTP client.
        http: reqwest::Client,
    },
}

/// How long one call may take: longer than any wait the workloads ask for.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

fn base_url(endpoint: &str) -> String {
    let trimmed = endpoint.trim().trim_end_matches('/');
    if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        format!("http://{trimmed}")
    }
}

/// Sends `request`; the answer's JSON, or the refusal of a status outside
/// 2xx.
async fn answer_of(request: reqwest::RequestBuilder) -> Result<Value, BenchError> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    if !(200..300).contains(&status) {
        return Err(BenchError::Refused { status, body: text });
    }
    serde_json::from_str(&text).map_err(|e| BenchError::Unexpected(format!("{e}: {text}")))
}

fn client() -> Result<reqwest::Client, BenchError> {
    Ok(reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .tcp_nodelay(true)
        .pool_max_idle_per_host(1024)
        .build()?)
}

impl Target {
    /// A corral cluster at `endpoints` (host:port or URLs).
    pub fn corral(endpoints: &[String]) -> Result<Target, BenchError> {
        Ok(Target::Corral {
            endpoints: endpoints.iter().map(|e| base_url(e)).collect(),
            http: client()?,
        })
    }

    /// An etcd cluster at `endpoints` (its client URLs).
    pub fn etcd(endpoints: &[String]) -> Result<Target, BenchError> {
        Ok(Target::Etcd {
            endpoints: endpoints.iter().map(|e| base_url(e)).collect(),
            http: client()?,
        })
    }

    /// `corral` or `etcd`.
    pub fn name(&self) -> &'static str {
        match self {
            Target::Corral { .. } => "corral",
            Target::Etcd { .. } => "etcd",
        }
    }

    /// POSTs `body` to `path` on worker `worker`'s endpoint; the answer's
    /// JSON.
    async fn post(&self, worker: usize, path: &str, body: Value) -> Result<Value, BenchError> {
        let (endpoints, http) = match self {
            Target::Corral { endpoints, http } | Target::Etcd { endpoints, http } => {
                (endpoints, http)
            }
        };
        let endpoint = &endpoints[worker % endpoints.len()];
        answer_of(http.post(format!("{endpoint}{path}")).json(&body)).await
    }

    /// The endpoints and the shared HTTP client of a corral target; etcd
    /// is refused as having no `what`.
    fn corral_parts(&self, what: &str) -> Result<(&[String], &reqwest::Client), BenchError> {
        match self {
            Target::Corral { endpoints, http } => Ok((endpoints, http)),
            Target::Etcd { .. } => Err(BenchError::Unexpected(format!("etcd has no {what}"))),
        }
    }

    /// The shared HTTP client of a corral target; etcd is refused as
    /// having no `what`.
    fn corral_http(&self, what: &str) -> Result<&reqwest::Client, BenchError> {
        self.corral_parts(what).map(|(_, http)| http)
    }

    /// Grants a lease of `ttl` (whole seconds on etcd).
    pub async fn grant_lease(&self, worker: usize, ttl: Duration) -> Result<Lease, BenchError> {
        let (path, body, field) = match self {
            Target::Corral { .. } => (
                "/v1/leases",
                json!({ "ttl_ms": ttl.as_millis() as u64 }),
                "lease_id",
            ),
            Target::Etcd { .. } => (
                "/v3/lease/grant",
                json!({ "TTL": ttl.as_secs().max(1) }),
                "ID",
            ),
        };
        let answer = self.post(worker, path, body).await?;
        let id = answer[field]
            .as_str()
            .ok_or_else(|| BenchError::Unexpected(answer.to_string()))?;
        Ok(Lease { id: id.to_string() })
    }

    /// Takes the lock `name` under `lease`, waiting for it server-side (at
    /// most `wait` on corral; etcd's lock waits until granted).
    pub async fn lock(
        &self,
        worker: usize,
        lease: &Lease,
        name: &str,
        wait: Duration,
    ) -> Result<Held, BenchError> {
        match self {
            Target::Corral { .. } => {
                let body = json!({
                    "lease_id": lease.id,
                    "name": name,
                    "wait_ms": wait.as_millis() as u64,
                });
                let grant = self.post(worker, "/v1/locks/acquire", body).await?;
                let token = grant["fencing_token"]
                    .as_u64()
                    .ok_or_else(|| BenchError::Unexpected(grant.to_string()))?;
                Ok(Held {
                    key: name.to_string(),
                    token,
                })
            }
            Target::Etcd { .. } => {
                let body = json!({ "name": BASE64.encode(name), "lease": lease.id });
                let locked = self.post(worker, "/v3/lock/lock", body).await?;
                let key = locked["key"]
                    .as_str()
                    .ok_or_else(|| BenchError::Unexpected(locked.to_string()))?;
                // etcd's fencing token is the lock key's create revision;
                // the header's revision is the store's at the answer.
                let token = locked["header"]["revision"]
                    .as_str()
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0);
                Ok(Held {
                    key: key.to_string(),
                    token,
                })
            }
        }
    }

    /// Releases a held lock.
    pub async fn unlock(
        &self,
        worker: usize,
        lease: &Lease,
        held: &Held,
    ) -> Result<(), BenchError> {
        match self {
            Target::Corral { .. } => {
                let body = json!({ "lease_id": lease.id, "name": held.key });
                self.post(worker, "/v1/locks/release", body).await?;
            }
            Target::Etcd { .. } => {
                self.post(worker, "/v3/lock/unlock", json!({ "key": held.key }))
                    .await?;
            }
        }
        Ok(())
    }

    /// Adds an item to the work queue `queue` (corral only: etcd has no
    /// queue).
    pub async fn push(&self, worker: usize, queue: &str) -> Result<(), BenchError> {
        self.corral_parts("queues")?;
        let body = json!({ "payload": { "worker": worker } });
        self.post(worker, &format!("/v1/queues/{queue}/items"), body)
            .await?;
        Ok(())
    }

    /// Claims one item of `queue` under `lease`, waiting at most `wait`;
    /// the item's id and its claim's token.
    pub async fn claim(
        &self,
        worker: usize,
        lease: &Lease,
        queue: &str,
        wait: Duration,
    ) -> Result<(u64, u64), BenchError> {
        self.corral_parts("queues")?;
        let body = json!({
            "lease_id": lease.id,
            "visibility_ms": 30_000,
            "wait_ms": wait.as_millis() as u64,
        });
        let claimed = self
            .post(worker, &format!("/v1/queues/{queue}/claim"), body)
            .await?;
        let item = &claimed["items"][0];
        match (item["item_id"].as_u64(), item["fencing_token"].as_u64()) {
            (Some(id), Some(token)) => Ok((id, token)),
            _ => Err(BenchError::Unexpected(claimed.to_string())),
        }
    }

    /// Acks item `id` of `queue` under its claim's `token`.
    pub async fn ack(
        &self,
        worker: usize,
        queue: &str,
        (id, token): (u64, u64),
    ) -> Result<(), BenchError> {
        let body = json!({ "item_id": id, "fencing_token": token });
        self.post(worker, &format!("/v1/queues/{queue}/ack"), body)
            .await?;
        Ok(())
    }

    /// The first endpoint of a corral cluster: the node a load inside runs
    /// in.
    pub(crate) fn first_endpoint(&self) -> Result<&str, BenchError> {
        let (endpoints, _) = self.corral_parts("load inside a node")?;
        endpoints
            .first()
            .map(String::as_str)
            .ok_or_else(|| BenchError::Unexpected("no endpoint".into()))
    }

    /// Renews a lease once.
    pub async fn keepalive(&self, worker: usize, lease: &Lease) -> Result<(), BenchError> {
        match self {
            Target::Corral { .. } => {
                let path = format!("/v1/leases/{}/keepalive", lease.id);
                self.post(worker, &path, json!({})).await?;
            }
            Target::Etcd { .. } => {
                let answer = self
                    .post(worker, "/v3/lease/keepalive", json!({ "ID": lease.id }))
                    .await?;
                // A lease etcd no longer has comes back with no TTL.
                if answer["result"]["TTL"].is_null() {
                    return Err(BenchError::Refused {
                        status: 404,
                        body: answer.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Renews many leases with one call; the ids of those that are gone.
    /// corral only.
    pub async fn keepalive_all(
        &self,
        worker: usize,
        leases: &[Lease],
    ) -> Result<Vec<String>, BenchError> {
        self.corral_parts("batch keepalive")?;
        let ids: Vec<&str> = leases.iter().map(|l| l.id.as_str()).collect();
        let answer = self
            .post(worker, "/v1/leases/keepalive", json!({ "lease_ids": ids }))
            .await?;
        let gone = answer["not_found"]
            .as_array()
            .ok_or_else(|| BenchError::Unexpected(answer.to_string()))?;
        Ok(gone
            .iter()
            .filter_map(|id| id.as_str().map(str::to_string))
            .collect())
    }

    /// The leader's id and client address, as the first node that knows
    /// one says. corral only.
    pub async fn leader(&self) -> Option<(u64, String)> {
        let (endpoints, http) = self.corral_parts("leader lookup").ok()?;
        for endpoint in endpoints {
            let answer = http
                .get(format!("{endpoint}/v1/cluster"))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            let Ok(response) = answer else { continue };
            let Ok(cluster) = response.json::<Value>().await else {
                continue;
            };
            let Some(leader) = cluster["leader_id"].as_u64() else {
                continue;
            };
            let members = cluster["members"].as_array()?;
            let member = members.iter().find(|m| m["id"] == leader)?;
            // Its client address: with peers apart, `addr` is the peer
            // listener, which serves no /metrics.
            let addr = member["client_addr"].as_str().or(member["addr"].as_str())?;
            return Some((leader, addr.to_string()));
        }
        None
    }

    /// The leader's id and the value of `metric` (a line `metric VALUE`
    /// of its `/metrics`). corral only.
    pub async fn leader_metric(&self, metric: &str) -> Option<(u64, f64)> {
        let (leader, addr) = self.leader().await?;
        Some((leader, self.node_metric(&addr, metric).await?))
    }

    /// The value of `metric` (a line `metric VALUE`) in the `/metrics` of
    /// the node serving clients at `addr`. corral only.
    pub async fn node_metric(&self, addr: &str, metric: &str) -> Option<f64> {
        let http = self.corral_http("metrics lookup").ok()?;
        let url = format!("{}/metrics", base_url(addr));
        let text = http.get(url).send().await.ok()?.text().await.ok()?;
        metric_value(&text, metric)
    }

    /// Has the node at `addr` build a snapshot of all it applied
    /// (`POST /v1/cluster/snapshot`, which answers once it is built); the
    /// last log index the snapshot covers. corral only.
    pub async fn build_snapshot(&self, addr: &str) -> Result<u64, BenchError> {
        let http = self.corral_http("snapshot on request")?;
        let url = format!("{}/v1/cluster/snapshot", base_url(addr));
        // Longer than the node's own wait for the build (300 s).
        let request = http.post(url).timeout(Duration::from_secs(320));
        let built = answer_of(request.json(&json!({}))).await?;
        built["snapshot_index"]
            .as_u64()
            .ok_or_else(|| BenchError::Unexpected(built.to_string()))
    }

    /// Runs `request`'s cycles inside the node at `addr` (`POST
    /// /test/load`, on a node started with `--test-faults`), with no client
    /// HTTP in front of them. corral only.
    pub async fn load_inside(
        &self,
        addr: &str,
        request: &LoadRequest,
    ) -> Result<LoadReport, BenchError> {
        let http = self.corral_http("load inside a node")?;
        let url = format!("{}/test/load", base_url(addr));
        let run = Duration::from_millis(request.duration_ms);
        // A worker may end its run in a wait of up to 10 s, then revoke.
        let answer = answer_of(http.post(url).timeout(run + CALL_TIMEOUT).json(request)).await?;
        serde_json::from_value(answer).map_err(|e| BenchError::Unexpected(e.to_string()))
    }

    /// Adds node `node_id`, started with `--join` and serving peers at
    /// `peer_addr`, through the leader at `leader_addr`; answers once it
    /// caught up (waiting at most `catch_up`) and votes. corral only.
    pub async fn add_member(
        &self,
        leader_addr: &str,
        node_id: u64,
        peer_addr: &str,
        catch_up: Duration,
    ) -> Result<(), BenchError> {
        let http = self.corral_http("members added by a call")?;
        let url = format!("{}/v1/cluster/members", base_url(leader_addr));
        let body = json!({
            "node_id": node_id,
            "peer_addr": peer_addr,
            "catch_up_ms": catch_up.as_millis() as u64,
        });
        let request = http.post(url).timeout(catch_up + CALL_TIMEOUT);
        answer_of(request.json(&body)).await.map(|_| ())
    }

    /// The exclusive holder of lock `name` (its lease id and token) as the
    /// node at `addr` reads it, linearizably: `None` while free. corral
    /// only.
    pub async fn holder_on(
        &self,
        addr: &str,
        name: &str,
    ) -> Result<Option<(String, u64)>, BenchError> {
        let http = self.corral_http("lock holders")?;
        let url = format!("{}/v1/locks", base_url(addr));
        let lock = answer_of(http.get(url).query(&[("name", name)])).await?;
        let holder = &lock["holder"];
        if holder.is_null() {
            return Ok(None);
        }
        match (
            holder["lease_id"].as_str(),
            holder["fencing_token"].as_u64(),
        ) {
            (Some(lease), Some(token)) => Ok(Some((lease.to_string(), token))),
            _ => Err(BenchError::Unexpected(lock.to_string())),
        }
    }

    /// Ends a lease.
    pub async fn revoke(&self, worker: usize, lease: &Lease) -> Result<(), BenchError> {
        match self {
            Target::Corral { endpoints, http } => {
                let endpoint = &endpoints[worker % endpoints.len()];
                let response = http
                    .delete(format!("{endpoint}/v1/leases/{}", lease.id))
                    .send()
                    .await?;
                let status = response.status().as_u16();
                if !(200..300).contains(&status) {
                    let body = response.text().await.unwrap_or_default();
                    return Err(BenchError::Refused { status, body });
                }
            }
            Target::Etcd { .. } => {
                self.post(worker, "/v3/lease/revoke", json!({ "ID": lease.id }))
                    .await?;
            }
        }
        Ok(())
    }
}

/// The value of the sample `metric` (a line `metric VALUE`) in a
/// `/metrics` text.
fn metric_value(text: &str, metric: &str) -> Option<f64> {
    let value = text.lines().find_map(|line| {
        let rest = line.strip_prefix(metric)?;
        rest.strip_prefix(' ')
    })?;
    value.trim().parse().ok()
}

#[cfg(test)]
#[path = "target_test.rs"]
mod tests;
