//! The status page in a real browser: headless Chromium, driven through
//! chromedriver's WebDriver API, against a real 3-node cluster. It finds
//! the held lock and its holder, the timeline's bars, filters by prefix,
//! and saves a screenshot under the test's output folder.
//!
//! Chromium and chromedriver come from the Debian packages `chromium` and
//! `chromium-driver`, which `deploy/setup.sh` installs.

mod harness;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use harness::{token, Cluster};
use serde_json::{json, Value};

/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one browser session in it.
struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    async fn start() -> Browser {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
            listener.local_addr().expect("addr").port()
        };
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver not runnable: run deploy/setup.sh as root, or apt-get install chromium chromium-driver");
        let mut browser = Browser {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let ready = browser
                .http
                .get(format!("{}/status", browser.base))
                .send()
                .await;
            if let Ok(response) = ready {
                let body: Value = response.json().await.unwrap_or_default();
                if body["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let session = browser
            .call(
                reqwest::Method::POST,
                "/session",
                Some(json!({ "capabilities": { "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": "/usr/bin/chromium",
                        "args": ["--headless", "--no-sandbox", "--disable-gpu",
                                 "--disable-dev-shm-usage", "--window-size=1280,900"]
                    }
                }}})),
            )
            .await
            .expect("new session");
        let id = session["sessionId"].as_str().expect("session id");
        browser.base = format!("{}/session/{id}", browser.base);
        browser
    }

    /// One WebDriver call: its `value`, or the error it answered with.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| json!(e.to_string()))?;
        let ok = response.status().is_success();
        let body: Value = response.json().await.map_err(|e| json!(e.to_string()))?;
        if ok {
            Ok(body["value"].clone())
        } else {
            Err(body["value"].clone())
        }
    }

    async fn open(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await
            .expect("navigate");
    }

    /// The elements `css` matches now, each as its text and `data-*`
    /// attributes, read in one step (the page redraws every 2 s, which
    /// would stale element references kept between calls).
    async fn query(&self, css: &str) -> Vec<Value> {
        let script = "return [...document.querySelectorAll(arguments[0])]\
            .map((e) => ({ text: e.textContent, data: { ...e.dataset } }));";
        let found = self
            .call(
                reqwest::Method::POST,
                "/execute/sync",
                Some(json!({ "script": script, "args": [css] })),
            )
            .await
            .expect("query");
        found.as_array().cloned().unwrap_or_default()
    }

    /// Waits until what `css` matches satisfies `ready`, and returns it.
    async fn wait_for(&self, css: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let found = self.query(css).await;
            if ready(&found) {
                return found;
            }
            if tokio::time::Instant::now() > deadline {
                let page = self
                    .call(reqwest::Method::GET, "/source", None)
                    .await
                    .unwrap_or_default();
                panic!("`{css}` matched {found:?}\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The one element `css` matches, as a WebDriver reference.
    async fn element(&self, css: &str) -> String {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await
            .expect("find element");
        found[ELEMENT]
            .as_str()
            .expect("element reference")
            .to_string()
    }

    async fn type_into(&self, element: &str, text: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await
        .expect("type");
    }

    async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let png = self
            .call(reqwest::Method::GET, "/screenshot", None)
            .await
            .expect("screenshot");
        base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64 png"))
            .expect("valid base64")
    }

    async fn quit(&self) {
        let _ = self.call(reqwest::Method::DELETE, "", None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_status_page_shows_the_held_lock_its_holder_and_its_timeline() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.wait_leader().await;
    let node = cluster.live().into_iter().find(|id| *id != leader).unwrap();

    // Two holds of one lock: a released one, then a current one; and a
    // second lock, to filter away by prefix.
    let before = cluster.lease(node, 60_000).await;
    let holder = cluster.lease(node, 60_000).await;
    let (status, _) = cluster.acquire(node, &before, "ui/invoice", 0).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.release(node, &before, "ui/invoice").await;
    let (status, grant) = cluster.acquire(node, &holder, "ui/invoice", 0).await;
    assert_eq!(status, 200);
    let held_token = token(&grant);
    let (status, _) = cluster.acquire(node, &holder, "other/report", 0).await;
    assert_eq!(status, 200);
    // A queue with one ready item.
    let item = serde_json::json!({ "payload": { "invoice": 7 } });
    let (status, _) = cluster.post(node, "/v1/queues/ui-jobs/items", item).await;
    assert_eq!(status, 201);

    let browser = Browser::start().await;
    browser
        .open(&cluster.url(node, "/ui?lock=ui%2Finvoice"))
        .await;

    // The lock's row names its holder and token.
    let holders = browser
        .wait_for(r#"tr[data-lock="ui/invoice"] .holder"#, |h| h.len() == 1)
        .await;
    assert_eq!(holders[0]["data"]["lease"], holder.as_str());
    assert_eq!(holders[0]["data"]["token"], held_token.to_string());
    let shown = holders[0]["text"].as_str().unwrap_or_default();
    assert!(shown.contains(&format!("#{held_token}")), "{shown}");
    assert!(shown.contains(&holder[holder.len() - 8..]), "{shown}");

    // The header knows the leader; the timeline has both holds, the
    // current one last.
    let leader_cell = browser.wait_for("#leader", |l| l.len() == 1).await;
    assert_eq!(leader_cell[0]["text"], leader.to_string());
    let bars = browser
        .wait_for("#timeline svg rect.hold", |b| b.len() == 2)
        .await;
    assert_eq!(bars[0]["data"]["lease"], before.as_str());
    assert_eq!(bars[1]["data"]["lease"], holder.as_str());

    let shot = browser.screenshot().await;
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui");
    std::fs::create_dir_all(&dir).expect("output folder");
    let path = dir.join("status-page.png");
    std::fs::write(&path, &shot).expect("save screenshot");
    assert!(shot.starts_with(b"\x89PNG"), "a PNG");
    eprintln!("screenshot: {}", path.display());

    // The queue is listed with its ready item.
    let queues = browser.wait_for("#queues tbody tr", |r| r.len() == 1).await;
    assert_eq!(queues[0]["data"]["queue"], "ui-jobs");
    assert!(queues[0]["text"]
        .as_str()
        .is_some_and(|t| t.contains("ui-jobs")));

    // Both locks are listed; the prefix search keeps one.
    browser.wait_for("#locks tbody tr", |r| r.len() == 2).await;
    let search = browser.element("#prefix").await;
    browser.type_into(&search, "other/").await;
    let rows = browser.wait_for("#locks tbody tr", |r| r.len() == 1).await;
    assert_eq!(rows[0]["data"]["lock"], "other/report");
    browser.quit().await;
}
