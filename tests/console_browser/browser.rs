//! A headless Chromium driven over WebDriver: `chromedriver` started by the test on a free
//! port (its process group killed on drop, so no browser outlives the test), one session with
//! the console's language, and the few page operations the console tests use.
//!
//! Chromium and ChromeDriver must be installed (Debian: `chromium chromium-driver
//! fonts-noto-cjk`; `.ci/run` installs them). Without them the tests fail and say so, unless
//! `PAYGATE_SKIP_BROWSER=1` is set.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::actions::{InputSource, MOUSE_BUTTON_LEFT, MouseActions, PointerAction};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// How long a page or a condition is waited for before the test fails.
const PATIENCE: Duration = Duration::from_secs(15);
/// The window: a laptop's, wide enough for the console's widest table.
const WINDOW: (u32, u32) = (1280, 1000);

/// The first of `names` found on `PATH`.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// `chromedriver`, and the browser binary: `PAYGATE_CHROMIUM` if set, else `chromium` (or
/// `chromium-browser`, `google-chrome`) on `PATH`.
fn tools() -> Result<(PathBuf, PathBuf), String> {
    let driver = on_path(&["chromedriver"]).ok_or("chromedriver is not on PATH")?;
    let browser = match std::env::var_os("PAYGATE_CHROMIUM") {
        Some(p) => PathBuf::from(p),
        None => on_path(&["chromium", "chromium-browser", "google-chrome"])
            .ok_or("chromium is not on PATH")?,
    };
    Ok((driver, browser))
}

/// Whether the browser tests should run; `false` only when `PAYGATE_SKIP_BROWSER=1`, said on
/// stderr. Missing tools otherwise fail the test with what to install.
pub fn wanted() -> bool {
    if std::env::var("PAYGATE_SKIP_BROWSER").is_ok_and(|v| v == "1") {
        eprintln!("PAYGATE_SKIP_BROWSER=1: skipping this browser test");
        return false;
    }
    if let Err(missing) = tools() {
        panic!(
            "{missing}. The console's browser tests need Chromium and ChromeDriver \
             (Debian/Ubuntu: `apt-get install chromium chromium-driver fonts-noto-cjk`; \
             .ci/run installs them), or set PAYGATE_SKIP_BROWSER=1 to skip them"
        );
    }
    true
}

/// The `chromedriver` process, leader of its own process group: dropping it kills the group,
/// the browser it started included.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let group = self.0.id() as i32;
        // SAFETY: kill(2) on the process group this test created; no memory is touched.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.0.wait();
    }
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub struct Browser {
    pub client: Client,
    /// The gateway's address, which `goto` paths are relative to.
    base: String,
    _driver: Driver,
}

impl Browser {
    /// A new browser session (its own profile: no cookies) on the gateway at `base`.
    pub async fn open(base: &str) -> Browser {
        let (driver_bin, browser_bin) = tools().expect("checked by wanted()");
        let port = free_port();
        let mut child = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", driver_bin.display()));
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = std::time::Instant::now() + PATIENCE;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("chromedriver exited before listening: {status}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "chromedriver did not listen on {addr}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let driver = Driver(child);
        let capabilities = json!({
            "browserName": "chrome",
            // An alert the page opened stays open for the test to find.
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {
                "binary": browser_bin,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    format!("--window-size={},{}", WINDOW.0, WINDOW.1),
                    "--lang=zh-CN",
                    "--no-first-run",
                    "--no-default-browser-check",
                ],
                "prefs": {"intl.accept_languages": "zh-CN,zh"},
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("an object literal")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://{addr}"))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no browser session from chromedriver (browser {}): {e}",
                    browser_bin.display()
                )
            });
        Browser {
            client,
            base: base.trim_end_matches('/').to_owned(),
            _driver: driver,
        }
    }

    /// Ends the session cleanly (the driver is killed on drop in any case).
    pub async fn quit(self) {
        let _ = self.client.clone().close().await;
    }

    pub async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// The path of the page shown now.
    pub async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("current url")
            .path()
            .to_owned()
    }

    /// Polls until the page shown is at `path` (navigations end asynchronously).
    pub async fn wait_for_path(&self, path: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let now = self.path().await;
            if now == path {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never reached {path}; at {now}: {}",
                self.body_text().await
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The element matching `css`, waited for.
    pub async fn find(&self, css: &str) -> Element {
        match self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(found) => found,
            Err(e) => panic!(
                "no {css} on {}: {e}\n{}",
                self.path().await,
                self.body_text().await
            ),
        }
    }

    /// How many elements match `css` now (no waiting).
    pub async fn count(&self, css: &str) -> usize {
        self.client
            .find_all(Locator::Css(css))
            .await
            .expect("find_all")
            .len()
    }

    /// The visible text of the first `css`.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("text")
    }

    /// The page's visible text.
    pub async fn body_text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(e) => format!("(no body: {e})"),
        }
    }

    /// The page's `<h1>`.
    pub async fn title(&self) -> String {
        self.text("main h1").await
    }

    /// Types `value` into the field named `name` (cleared first).
    pub async fn fill(&self, name: &str, value: &str) {
        let field = self.find(&format!("[name=\"{name}\"]")).await;
        field.clear().await.expect("clear");
        field.send_keys(value).await.expect("type");
    }

    /// Sets a field's value directly (a date input, whose typing order follows the locale).
    pub async fn set_value(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        self.client
            .execute(
                "arguments[0].value = arguments[1];",
                vec![serde_json::to_value(&field).expect("element"), json!(value)],
            )
            .await
            .expect("set value");
    }

    /// A person's double-click: two presses in one go, the second before the first's page has
    /// loaded.
    pub async fn double_click(&self, css: &str) {
        let element = self.find(css).await;
        let press = [
            PointerAction::Down {
                button: MOUSE_BUTTON_LEFT,
            },
            PointerAction::Up {
                button: MOUSE_BUTTON_LEFT,
            },
        ];
        let mouse = press.iter().chain(&press).cloned().fold(
            MouseActions::new("mouse".into()).then(PointerAction::MoveToElement {
                element,
                duration: None,
                x: 0.0,
                y: 0.0,
            }),
            InputSource::then,
        );
        self.client
            .perform_actions(mouse)
            .await
            .unwrap_or_else(|e| panic!("double-click {css}: {e}"));
    }

    /// Polls until the address of the page shown has `needle` in its query (a GET form's
    /// answer, at the same path as the form).
    pub async fn wait_for_query(&self, needle: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let url = self.client.current_url().await.expect("current url");
            if url.query().is_some_and(|q| q.contains(needle)) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never reached a page with {needle}; at {url}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Polls until the page shown is no longer at `path`; answers where it is.
    pub async fn wait_to_leave(&self, path: &str) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let now = self.path().await;
            if now != path {
                return now;
            }
            assert!(tokio::time::Instant::now() < deadline, "never left {path}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        self.find(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// The value of cookie `name` as the browser holds it (`HttpOnly` ones included).
    pub async fn cookie(&self, name: &str) -> Option<String> {
        self.client
            .get_named_cookie(name)
            .await
            .ok()
            .map(|c| c.value().to_owned())
    }

    /// Posts a form built in the page (as a forging page on another site would, but from the
    /// console's own origin so the cookies go along) and waits for the answer to load.
    pub async fn post_form(&self, action: &str, fields: &[(&str, &str)]) {
        let before = self.page_id().await;
        let fields: Value = fields.iter().map(|(k, v)| json!([k, v])).collect();
        self.client
            .execute(
                "const f = document.createElement('form');
                 f.method = 'post'; f.action = arguments[0];
                 for (const [k, v] of arguments[1]) {
                   const i = document.createElement('input');
                   i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);
                 }
                 document.body.appendChild(f); f.submit();",
                vec![json!(action), fields],
            )
            .await
            .expect("post the form");
        self.wait_for_new_page(&before).await;
    }

    /// A mark set on the document shown now: a new page has none.
    async fn page_id(&self) -> String {
        let id = format!("{:x}", rand::random::<u64>());
        self.client
            .execute("window.__paygateTestPage = arguments[0];", vec![json!(id)])
            .await
            .expect("mark the page");
        id
    }

    async fn wait_for_new_page(&self, before: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let now = self
                .client
                .execute(
                    "return document.readyState === 'complete' ? (window.__paygateTestPage || '') : null;",
                    vec![],
                )
                .await;
            if let Ok(Value::String(id)) = now
                && id != before
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the form's answer never loaded"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Writes the page shown now, whole, as `<target>/console-screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) {
        // WebDriver captures the viewport: make the window as tall as the page (plus what the
        // window itself takes) for the picture.
        let height = self
            .client
            .execute(
                "return document.documentElement.scrollHeight + window.outerHeight - window.innerHeight;",
                vec![],
            )
            .await
            .ok()
            .and_then(|h| h.as_u64())
            .map_or(WINDOW.1, |h| (h as u32).clamp(WINDOW.1, 6000));
        let resize = height > WINDOW.1;
        if resize {
            self.client
                .set_window_size(WINDOW.0, height)
                .await
                .expect("resize");
        }
        let png = self.client.screenshot().await;
        if resize {
            self.client
                .set_window_size(WINDOW.0, WINDOW.1)
                .await
                .expect("resize back");
        }
        let png = png.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("write screenshot");
    }
}

/// `target/console-screenshots`, found from this test binary (`<target>/debug/deps/…`), so
/// `CARGO_TARGET_DIR` is followed.
pub fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("console-screenshots")
}
