//! The DNS setup widget in a real browser: headless Chromium (Debian
//! `chromium` + `chromium-driver`, driven over WebDriver with fantoccini)
//! against the `edge` binary, with the customer's zone in BIND (records
//! written with RFC 2136). A screenshot of every state, at 360 px and at
//! desktop width, goes to `target/tmp/widget-screenshots/`.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod support;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use control_plane::WidgetKey;
use fantoccini::{Client, ClientBuilder, key::Key};
use serde_json::{Value, json};
use support::{Edge, KEY, create_records, customer_dns, temp_dir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "widget-test-fleet-secret";
const MOBILE: (u32, u32) = (360, 900);
const DESKTOP: (u32, u32) = (1280, 900);

/// The edge on the local CA, checking the customer's zone in `dns`, with the
/// fleet's widget secret and `extra` settings.
fn edge(dns: &testkit::DnsServer, dir: &Path, extra: &[(&'static str, String)]) -> Edge {
    let port = || format!("127.0.0.1:{}", testkit::free_port().unwrap());
    let mut env = vec![
        ("EDGE_API_KEYS", KEY.to_owned()),
        ("EDGE_WIDGET_SECRET", SECRET.to_owned()),
        ("EDGE_STORE", dir.join("store").display().to_string()),
        ("EDGE_HTTPS_ADDR", port()),
        ("EDGE_HTTP_ADDR", port()),
        ("EDGE_METRICS_ADDR", port()),
        ("EDGE_DELEGATION_ZONE", "acme.edge.test".into()),
        ("EDGE_ROUTING_CNAME", "edge.edge.test".into()),
        ("EDGE_DNS_AUTHORITIES", dns.addr().to_string()),
        ("EDGE_TICK_MS", "200".into()),
        ("EDGE_DRIFT_INTERVAL_SECS", "3600".into()),
    ];
    env.extend_from_slice(extra);
    Edge::start(&env, &dir.join("edge.log"))
}

fn create(edge: &Edge, hostname: &str) -> Value {
    let (status, c) = edge.api("POST", "/v1/connections", Some(json!({ "hostname": hostname })));
    assert_eq!(status, 201, "{c}");
    c
}

/// A widget token the way the product gets one: the API call of the README.
fn widget_token(edge: &Edge, id: &str) -> String {
    let (status, t) = edge.api("POST", &format!("/v1/connections/{id}/widget-token"), None);
    assert_eq!(status, 200, "{t}");
    t["token"].as_str().unwrap().to_owned()
}

fn widget_url(edge: &Edge, token: &str) -> String {
    format!("http://{}/widget#token={token}", edge.api)
}

/// BIND serving the customer's zone (updatable with TSIG) and the platform's.
fn dns() -> testkit::DnsServer {
    testkit::DnsServer::builder()
        .zone(testkit::Zone::new("customer.test", "placeholder A 192.0.2.1\n"))
        .zone(testkit::Zone::new("edge.test", "edge A 127.0.0.1\n"))
        .start()
        .unwrap()
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("widget-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A headless Chromium session.
struct Browser {
    client: Client,
}

impl Browser {
    async fn open(driver: &testkit::ChromeDriver) -> Self {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(driver.capabilities(MOBILE.0, MOBILE.1))
            .connect(&driver.url())
            .await
            .unwrap_or_else(|e| panic!("no browser session: {e}\n{}", driver.log()));
        client.set_window_size(MOBILE.0, MOBILE.1).await.unwrap();
        Self { client }
    }

    /// A fresh page load (never a same-document fragment change).
    async fn load(&self, url: &str) {
        self.client.goto("about:blank").await.unwrap();
        self.client.goto(url).await.unwrap();
    }

    async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    async fn js_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute_async(script, args).await.unwrap()
    }

    async fn state(&self) -> String {
        self.js("return document.body.dataset.state || ''").await.as_str().unwrap_or_default().to_owned()
    }

    async fn wait_state(&self, state: &str, within: Duration) {
        let start = Instant::now();
        loop {
            if self.state().await == state {
                return;
            }
            let text = self.js("return document.body.innerText").await;
            assert!(start.elapsed() < within, "page never {state}: {text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `script` (an expression) is true.
    async fn wait_true(&self, script: &str, within: Duration) {
        let start = Instant::now();
        while self.js(&format!("return !!({script})")).await != Value::Bool(true) {
            let text = self.js("return document.body.innerText").await;
            assert!(start.elapsed() < within, "never true: {script}\n{text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Requests the page made to the API (the browser's own resource timing list).
    async fn api_calls(&self) -> Vec<String> {
        let v = self
            .js("return performance.getEntriesByType('resource').map(e => new URL(e.name).pathname)
                 .filter(p => p.startsWith('/v1/') || p === '/widget/session')")
            .await;
        v.as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect()
    }

    /// Everything in the document, hidden parts and attributes included.
    async fn html(&self) -> String {
        self.js("return document.documentElement.outerHTML").await.as_str().unwrap().to_owned()
    }

    /// `<name>-360.png` and `<name>-desktop.png`; checks that nothing is
    /// wider than the 360 px window.
    async fn screenshots(&self, name: &str) {
        let (width, overflow) = {
            let v = self.js("return [window.innerWidth, document.documentElement.scrollWidth]").await;
            (v[0].as_u64().unwrap(), v[1].as_u64().unwrap())
        };
        self.whole_page(&format!("{name}-360.png"), MOBILE).await;
        assert_eq!(width, u64::from(MOBILE.0), "the window is {width} px wide");
        assert!(overflow <= width, "{name}: content is {overflow} px wide in a {width} px window");
        self.whole_page(&format!("{name}-desktop.png"), DESKTOP).await;
        self.client.set_window_size(MOBILE.0, MOBILE.1).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    /// A screenshot of the whole page at `width`: the window is made as tall as the page.
    async fn whole_page(&self, file: &str, (width, height): (u32, u32)) {
        self.client.set_window_size(width, height).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The window's size includes the browser's frame: add it to the page's height.
        let v = self
            .js("return document.documentElement.scrollHeight + window.outerHeight - window.innerHeight")
            .await;
        let tall = u32::try_from(v.as_u64().unwrap()).unwrap_or(height).clamp(height, 4000);
        self.client.set_window_size(width, tall).await.unwrap();
        self.js("window.scrollTo(0, 0)").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(screenshot_dir().join(file), png).unwrap();
    }

    /// The record cards as the page shows them.
    async fn records(&self) -> Vec<Value> {
        let v = self
            .js("return Array.from(document.querySelectorAll('#records > li')).map(li => ({
                   values: Array.from(li.querySelectorAll('code')).map(c => c.textContent),
                   status: li.dataset.status,
                   badge: li.querySelector('.badge').textContent,
                   fix: li.querySelector('.fix').hidden ? '' : li.querySelector('.fix').textContent,
                   copies: Array.from(li.querySelectorAll('.copy')).filter(b => b.tagName === 'BUTTON'
                       && b.type === 'button').length,
                 }))")
            .await;
        v.as_array().unwrap().clone()
    }

    async fn press(&self, key: Key) {
        self.client.active_element().await.unwrap().send_keys(&key.to_string()).await.unwrap();
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// A page on another origin that embeds the widget in an iframe, as a
/// platform's dashboard does (README snippet).
async fn dashboard() -> (u16, Arc<Mutex<String>>) {
    let page: Arc<Mutex<String>> = Arc::default();
    let served = Arc::clone(&page);
    let addr = testkit::tcp_server(move |mut s| {
        let page = served.lock().unwrap().clone();
        async move {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = s.write_all(response.as_bytes()).await;
        }
    })
    .await;
    (addr.port(), page)
}

/// (a) the widget lists the records of a real connection; (b) once the
/// records exist in BIND, "Check now" (pressed from the keyboard) turns
/// them valid; it is keyboard-usable, readable at 360 px, served under a
/// strict CSP and embeddable only by the configured origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widget_lists_the_records_and_check_now_turns_them_valid() {
    let dns = dns();
    let dir = temp_dir("widget-valid");
    let (dashboard_port, dashboard_page) = dashboard().await;
    let ancestor = format!("http://127.0.0.1:{dashboard_port}");
    // No automatic re-check while the test runs: only "Check now" can turn the statuses.
    let edge = edge(
        &dns,
        &dir,
        &[("EDGE_WIDGET_REFRESH_SECS", "3600".into()), ("EDGE_WIDGET_FRAME_ANCESTORS", ancestor.clone())],
    );
    let c = create(&edge, "shop.customer.test");
    let id = c["id"].as_str().unwrap();
    let token = widget_token(&edge, id);

    // Served with a strict policy, nothing inline.
    let out = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null", &format!("http://{}/widget", edge.api)])
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    let policy = format!(
        "content-security-policy: default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors {ancestor}"
    );
    assert!(head.contains(&policy), "{head}");
    assert!(
        head.contains("referrer-policy: no-referrer") && head.contains("x-content-type-options: nosniff")
    );

    let driver = testkit::ChromeDriver::start().unwrap();
    let browser = Browser::open(&driver).await;
    browser.load(&widget_url(&edge, &token)).await;
    browser.wait_state("ready", Duration::from_secs(20)).await;

    // (a) The domain and each record with its copy buttons, all missing with the fix to apply.
    let domain = browser.js("return document.getElementById('domain').textContent").await;
    assert_eq!(domain, "shop.customer.test");
    let session = browser.js("return document.getElementById('session').textContent").await;
    assert!(session.as_str().unwrap().starts_with("This page stays connected until"), "{session}");
    let shown = browser.records().await;
    // Required records first, in the API's order, then the optional ones.
    let mut wanted = c["records"].as_array().unwrap().clone();
    wanted.sort_by_key(|r| r["required"] != true);
    assert_eq!(shown.len(), wanted.len(), "{shown:?}");
    for (card, r) in shown.iter().zip(&wanted) {
        assert_eq!(card["values"], json!([r["type"], r["name"], r["value"]]), "{card}");
        assert_eq!(card["copies"], 3, "type, name and value each have a copy button: {card}");
        if r["required"] == true {
            assert_eq!(card["status"], "missing", "{card}");
            assert!(card["fix"].as_str().unwrap().starts_with("Create a"), "{card}");
        }
    }
    // The stylesheet and the script ran under the policy (the page is ready and styled).
    let accent =
        browser.js("return getComputedStyle(document.getElementById('check')).backgroundColor").await;
    assert_eq!(accent, "rgb(11, 87, 208)");
    // A copy button copies (or, where the clipboard is refused, selects) and says so.
    browser.client.find(fantoccini::Locator::Css("#records .copy")).await.unwrap().click().await.unwrap();
    browser
        .wait_true(
            "['Copied', 'Selected'].includes(document.querySelector('#records .copy').textContent)",
            Duration::from_secs(5),
        )
        .await;
    browser.screenshots("a-records").await;

    // (b) The customer creates the records; the statuses turn valid only when "Check now" is used.
    create_records(&customer_dns(&dns, "customer.test"), &c, None, |_| false).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(browser.records().await.iter().all(|r| r["status"] != "valid"), "nothing rechecked by itself");
    // From the keyboard: Tab moves through real buttons with a visible focus ring to "Check now".
    // Start from the heading: a click on text moves where Tab starts from.
    browser.client.find(fantoccini::Locator::Css("h1")).await.unwrap().click().await.unwrap();
    let mut stops = Vec::new();
    for _ in 0..40 {
        browser.press(Key::Tab).await;
        let focused = browser
            .js("const e = document.activeElement; const s = getComputedStyle(e);
                 return [e.tagName, e.id, s.outlineStyle, s.outlineWidth]")
            .await;
        assert_eq!(focused[0], "BUTTON", "only buttons take focus: {focused}");
        assert_ne!(focused[2], "none", "focus is visible: {focused}");
        stops.push(focused[1].as_str().unwrap_or_default().to_owned());
        if focused[1] == "check" {
            break;
        }
    }
    assert_eq!(stops.last().map(String::as_str), Some("check"), "{stops:?}");
    assert_eq!(stops.len(), 3 * wanted.len() + 1, "every copy button, then Check now: {stops:?}");
    browser.press(Key::Enter).await;
    browser
        .wait_true(
            "Array.from(document.querySelectorAll('#records > li')).every(li => li.dataset.status === 'valid')",
            Duration::from_secs(20),
        )
        .await;
    let summary = browser.js("return document.getElementById('summary').textContent").await;
    assert!(summary.as_str().unwrap().starts_with("Every required record is correct."), "{summary}");
    assert!(browser.records().await.iter().all(|r| r["badge"] == "\u{2713} Correct" && r["fix"] == ""));
    // Said out loud to screen readers, and the focus stayed on the button.
    browser
        .wait_true(
            "document.getElementById('announce').textContent.includes('Correct')",
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(browser.js("return document.activeElement.id").await, "check");
    assert!(browser.api_calls().await.iter().any(|p| p.ends_with("/verify")), "Check now calls verify");
    let (_, now) = edge.api("GET", &format!("/v1/connections/{id}"), None);
    assert_ne!(now["state"], "pending_ownership", "verify moved the connection on: {now}");
    // SAN statuses: one entry per SAN when the connection has them, nothing otherwise.
    let sans = now["ssl"]["sans"].as_array().map_or(0, Vec::len);
    browser
        .wait_true(
            &format!("document.querySelectorAll('#sans > li').length === {sans}"),
            Duration::from_secs(5),
        )
        .await;
    let hidden = browser.js("return document.getElementById('sans-section').hidden").await;
    assert_eq!(hidden, Value::Bool(sans == 0));
    browser.screenshots("b-valid").await;

    // Embedded by the configured origin: it works in the iframe.
    let frame = format!(
        "<!doctype html><title>Dashboard</title><h1>Your domains</h1>\
         <iframe src=\"{}\" title=\"DNS setup\" width=\"100%\" height=\"700\" allow=\"clipboard-write\"></iframe>",
        widget_url(&edge, &token)
    );
    *dashboard_page.lock().unwrap() = frame;
    browser.load(&format!("http://127.0.0.1:{dashboard_port}/")).await;
    browser.client.enter_frame(0).await.unwrap();
    browser.wait_state("ready", Duration::from_secs(20)).await;
    browser.client.enter_parent_frame().await.unwrap();
    // Embedded by any other origin (localhost is another origin than 127.0.0.1): refused by the browser.
    browser.load(&format!("http://localhost:{dashboard_port}/")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    browser.client.enter_frame(0).await.unwrap();
    let blocked = browser.js("return [location.href, !!document.getElementById('widget')]").await;
    assert_eq!(blocked[1], Value::Bool(false), "the widget loaded in a frame of another origin: {blocked}");
    browser.client.enter_parent_frame().await.unwrap();

    browser.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// (c) A token expired by the clock (minted with the fleet's secret at a
/// time an hour earlier) shows "session expired" and the page calls
/// nothing more; (d) a token for another connection shows nothing of this
/// one, and cannot be made to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn widget_session_expires_and_shows_nothing_of_another_connection() {
    let dns = dns();
    let dir = temp_dir("widget-expiry");
    // Re-check every second while open: "no further calls" is then measured against a page that polls.
    let edge = edge(&dns, &dir, &[("EDGE_WIDGET_REFRESH_SECS", "1".into())]);
    let a = create(&edge, "shop.customer.test");
    let b = create(&edge, "other.customer.test");
    let (id_a, id_b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let of_a = [id_a, "shop.customer.test", a["ownership_token"].as_str().unwrap()];
    let key = WidgetKey::new(SECRET.as_bytes());
    let hour = time::Duration::minutes(60);

    let driver = testkit::ChromeDriver::start().unwrap();
    let browser = Browser::open(&driver).await;

    // (c) Signed by a clock 60 minutes minus 20 seconds behind: valid for 20 more seconds.
    let now = time::OffsetDateTime::now_utc();
    let (short, _) = key.sign(id_a, now - hour + time::Duration::seconds(20));
    browser.load(&widget_url(&edge, &short)).await;
    browser.wait_state("ready", Duration::from_secs(15)).await;
    assert_eq!(
        browser.js("return document.getElementById('domain').textContent").await,
        "shop.customer.test"
    );
    // Less than five minutes left: the page says so.
    let session = browser.js("return document.getElementById('session').textContent").await;
    assert!(session.as_str().unwrap().starts_with("This page disconnects at"), "{session}");
    let before = browser.api_calls().await.len();
    let start = Instant::now();
    while browser.api_calls().await.len() <= before {
        assert!(start.elapsed() < Duration::from_secs(5), "a live page re-checks by itself");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.wait_state("expired", Duration::from_secs(30)).await;
    let text = browser.js("return document.body.innerText").await;
    let text = text.as_str().unwrap();
    assert!(text.contains("Session expired") && text.contains("Reopen it from your dashboard"), "{text}");
    let html = browser.html().await;
    assert!(!html.contains("shop.customer.test") && !html.contains("Check now"), "{html}");
    let calls = browser.api_calls().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(browser.api_calls().await, calls, "no call after the session expired");
    browser.screenshots("c-expired").await;

    // Already expired when opened: the API's 401 ends it after one call.
    let (old, _) = key.sign(id_a, now - hour - time::Duration::minutes(1));
    browser.load(&widget_url(&edge, &old)).await;
    browser.wait_state("expired", Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(browser.api_calls().await, ["/widget/session"]);
    assert!(!browser.html().await.contains("shop.customer.test"));

    // (d) B's token shows B, and nothing of A anywhere in the document.
    let token_b = widget_token(&edge, id_b);
    browser.load(&widget_url(&edge, &token_b)).await;
    browser.wait_state("ready", Duration::from_secs(15)).await;
    assert_eq!(
        browser.js("return document.getElementById('domain').textContent").await,
        "other.customer.test"
    );
    let html = browser.html().await;
    for secret in of_a {
        assert!(!html.contains(secret), "{secret} of connection A is on B's page");
    }
    // Nor can the page get at A with B's token.
    let statuses = browser
        .js_async(
            "const [a, token, done] = arguments;
             const call = (m, p) => fetch(p, {method: m, headers: {Authorization: 'Bearer ' + token}}).then(r => r.status);
             Promise.all([call('GET', `/v1/connections/${a}`), call('GET', `/v1/connections/${a}/records:check`),
                          call('POST', `/v1/connections/${a}/verify`)]).then(done);",
            vec![json!(id_a), json!(token_b)],
        )
        .await;
    assert_eq!(statuses, json!([401, 401, 401]));
    browser.screenshots("d-other-connection").await;

    // B's signature with A's id: refused, the page shows the expired state and nothing of A.
    let (_, rest) = token_b.split_once('.').unwrap();
    browser.load(&widget_url(&edge, &format!("{id_a}.{rest}"))).await;
    browser.wait_state("expired", Duration::from_secs(15)).await;
    let html = browser.html().await;
    for secret in of_a {
        assert!(!html.contains(secret), "{secret} of connection A shown for a forged token");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(browser.api_calls().await, ["/widget/session"]);

    // A token whose connection was archived since: "removed", and no more calls.
    let gone = create(&edge, "gone.customer.test");
    let id_gone = gone["id"].as_str().unwrap();
    let token_gone = widget_token(&edge, id_gone);
    assert_eq!(edge.api("DELETE", &format!("/v1/connections/{id_gone}"), None).0, 200);
    browser.load(&widget_url(&edge, &token_gone)).await;
    browser.wait_state("expired", Duration::from_secs(15)).await;
    let text = browser.js("return document.body.innerText").await;
    assert!(text.as_str().unwrap().contains("Domain removed"), "{text}");
    let calls = browser.api_calls().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(browser.api_calls().await, calls, "no call once the domain is gone");
    assert!(!browser.html().await.contains("gone.customer.test"));

    browser.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
