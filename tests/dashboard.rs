//! The dashboard end to end in real headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven over WebDriver): `custody serve` on the demo ledger; open the
//! overview, search the Korla unit, check that its graph shows the public security bureau as
//! a restricted end with its list entry and that the browser itself re-verified every
//! signature, download the bundle and verify it with `custody verify-bundle`, open the
//! party page, check the layout at phone width, and check that no request left the
//! server's origin. Screenshots of the three pages go to `target/dashboard/`.
//!
//! Without Chromium installed the test says SKIPPED and passes, unless
//! `CUSTODY_E2E=required` (as `.ci/run` sets after installing it).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const DRIVER: &str = "/usr/bin/chromedriver";

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn artifacts() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard");
    std::fs::create_dir_all(&d).expect("artifact dir");
    d
}

async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(artifacts().join(format!("{name}.png")), png).expect("write screenshot");
}

/// Every resource the page loaded, and the page itself, come from `origin`.
async fn same_origin_only(c: &Client, origin: &str) {
    let v = c
        .execute(
            "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href]);",
            vec![],
        )
        .await
        .expect("resource list");
    for u in v.as_array().expect("array") {
        let u = u.as_str().expect("url");
        assert!(u.starts_with(origin), "a request left the origin: {u}");
    }
}

/// The page's width fits the viewport (only `.scroll` boxes scroll sideways); else the
/// elements that stick out.
async fn overflow(c: &Client) -> Vec<String> {
    loaded(c).await;
    let v = c
        .execute(
            "if (document.documentElement.scrollWidth <= document.documentElement.clientWidth + 1) return [];
             return Array.from(document.querySelectorAll('body *'))
               .filter(e => !e.closest('.scroll') && e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
               .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right));",
            vec![],
        )
        .await
        .expect("width");
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_dashboard_in_chromium() {
    let have = Path::new(CHROMIUM).exists() && Path::new(DRIVER).exists();
    if !have {
        assert!(
            std::env::var("CUSTODY_E2E").as_deref() != Ok("required"),
            "CUSTODY_E2E=required but {CHROMIUM} or {DRIVER} is missing"
        );
        eprintln!("SKIPPED: install chromium and chromium-driver to run the dashboard test");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("demo");
    let out = Command::new(env!("CARGO_BIN_EXE_custody"))
        .args(["--format", "json", "demo", "--data"])
        .arg(&data)
        .output()
        .expect("demo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let served = common::process::serve(&data, &[]);
    let origin = served.url.clone();
    let port = common::process::free_port();
    let _driver = Killed(
        Command::new(DRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver not listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(drive(&origin, port, tmp.path()));
}

async fn drive(origin: &str, port: u16, tmp: &Path) {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                     "--window-size=1280,1400"]
        }),
    );
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session");

    // Overview: counts, the flagged units, checkpoint, lists.
    c.goto(&format!("{origin}/")).await.expect("overview");
    let title = c.title().await.expect("title");
    assert!(title.starts_with("Overview"), "{title}");
    let counts = c
        .find(Locator::Css("ul.counts"))
        .await
        .expect("counts")
        .text()
        .await
        .expect("text");
    assert!(counts.contains("sanctioned end"), "{counts}");
    screenshot(&c, "overview").await;
    same_origin_only(&c, origin).await;

    // Search the Korla unit by its serial.
    let q = c
        .find(Locator::Css("input[name=q]"))
        .await
        .expect("search box");
    q.send_keys("SN0001").await.expect("type");
    c.find(Locator::Css("form.filters button"))
        .await
        .expect("button")
        .click()
        .await
        .expect("submit");
    // The results are a new page: wait for it, not for the old page's links.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !c
        .current_url()
        .await
        .expect("url")
        .as_str()
        .contains("q=SN0001")
    {
        assert!(Instant::now() < deadline, "the search did not load");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loaded(&c).await;
    let link = wait_for(&c, "table.flagged a").await;
    let text = link.text().await.expect("link text");
    assert!(text.ends_with("SN0001"), "{text}");
    let rows = c
        .find_all(Locator::Css("table.flagged tbody tr"))
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1, "the search finds exactly the unit");
    link.click().await.expect("open the unit");

    // Unit page: verdict, the graph's restricted end with its list entry.
    let verdict = wait_for(&c, "#verdict")
        .await
        .text()
        .await
        .expect("verdict");
    assert_eq!(verdict, "sanctioned end");
    let restricted = c
        .find_all(Locator::Css("svg g.party-restricted"))
        .await
        .expect("restricted nodes");
    assert_eq!(
        restricted.len(),
        1,
        "one restricted party in SN0001's graph"
    );
    let node = restricted[0].text().await.unwrap_or_default();
    let node_html = restricted[0].html(false).await.expect("node html");
    assert!(
        node_html.contains("Korla City Public Security Bureau"),
        "{node_html}"
    );
    assert!(
        node_html.contains("Entity List"),
        "the list entry is shown: {node_html}"
    );
    assert!(
        node.contains("korla-psb") || node_html.contains("korla-psb"),
        "{node}"
    );
    // The browser re-verified every signature and hash itself.
    let deadline = Instant::now() + Duration::from_secs(20);
    let result = loop {
        let r = c
            .find(Locator::Css("#browser-check"))
            .await
            .expect("check")
            .attr("data-result")
            .await
            .expect("attr");
        if let Some(r) = r {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "the browser check did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let said = c
        .find(Locator::Css("#browser-check"))
        .await
        .expect("check")
        .text()
        .await
        .expect("text");
    assert_eq!(result, "ok", "{said}");
    let cells = c
        .find_all(Locator::Css("td.bcheck.ok"))
        .await
        .expect("cells");
    let rows = c
        .find_all(Locator::Css("table.timeline tbody tr"))
        .await
        .expect("rows");
    assert_eq!(
        cells.len(),
        rows.len(),
        "every event checked in the browser"
    );
    screenshot(&c, "unit").await;
    same_origin_only(&c, origin).await;

    // The bundle the button offers verifies offline.
    let href = c
        .find(Locator::Css("a#bundle"))
        .await
        .expect("bundle button")
        .attr("href")
        .await
        .expect("href")
        .expect("a link");
    assert!(href.starts_with("/v1/"), "same origin: {href}");
    let bundle = ureq::get(&format!("{origin}{href}"))
        .call()
        .expect("bundle")
        .into_string()
        .expect("text");
    let file = tmp.join("sn0001.bundle.json");
    std::fs::write(&file, bundle).expect("write");
    let info: Value = ureq::get(&format!("{origin}/v1/ledger"))
        .call()
        .expect("ledger")
        .into_json()
        .expect("json");
    let vk = info["verifier_key"].as_str().expect("verifier key");
    let out = Command::new(env!("CARGO_BIN_EXE_custody"))
        .arg("verify-bundle")
        .arg(&file)
        .args(["--verifier-key", vk])
        .output()
        .expect("verify-bundle");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // At phone width the unit page still fits.
    c.set_window_size(390, 844).await.expect("resize");
    c.refresh().await.expect("reload");
    wait_for(&c, "#verdict").await;
    let out = overflow(&c).await;
    assert!(
        out.is_empty(),
        "the unit page overflows at phone width: {out:?}"
    );
    screenshot(&c, "unit-phone").await;
    c.set_window_size(1280, 1400).await.expect("resize");

    // The party page of the holder.
    c.goto(&format!("{origin}/")).await.expect("overview");
    c.goto(&format!("{origin}/?q=SN0001"))
        .await
        .expect("search");
    wait_for(&c, "table.flagged a")
        .await
        .click()
        .await
        .expect("unit");
    wait_for(&c, ".verdict-line a")
        .await
        .click()
        .await
        .expect("party");
    let status = wait_for(&c, "#screening-status")
        .await
        .text()
        .await
        .expect("status");
    assert_eq!(status, "restricted");
    let h1 = c
        .find(Locator::Css("h1"))
        .await
        .expect("h1")
        .text()
        .await
        .expect("text");
    assert_eq!(h1, "Korla City Public Security Bureau");
    let flows = c.find(Locator::Css("#flows")).await;
    assert!(flows.is_ok(), "the flows section is there");
    screenshot(&c, "party").await;
    same_origin_only(&c, origin).await;
    c.close().await.expect("close");

    // Every page carries the strict policy.
    let r = ureq::get(&format!("{origin}/")).call().expect("overview");
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
}

/// Waits until the current document has finished loading.
async fn loaded(c: &Client) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while c
        .execute("return document.readyState;", vec![])
        .await
        .expect("state")
        != "complete"
    {
        assert!(Instant::now() < deadline, "the page did not finish loading");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn wait_for(c: &Client, css: &str) -> fantoccini::elements::Element {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await {
            return e;
        }
        assert!(Instant::now() < deadline, "{css} did not appear");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
