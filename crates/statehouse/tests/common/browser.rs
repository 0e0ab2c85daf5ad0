//! A small synchronous W3C WebDriver client for the web UI tests.
//!
//! [`Browser::start`] runs `chromedriver` on a free port and opens a headless Chromium session
//! with a fresh profile; dropping the [`Browser`] ends the session, kills the driver and removes
//! the profile. Every method panics on failure with the page's URL in the message.
//!
//! Binaries: `STATEHOUSE_CHROMEDRIVER` (default `/usr/bin/chromedriver`) and `STATEHOUSE_CHROMIUM`
//! (default `/usr/bin/chromium`); `bash scripts/test.sh` installs both.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

/// The key of a web element reference in W3C WebDriver JSON (from the WebDriver spec).
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);
const HOW_TO: &str = "run the tests with `bash scripts/test.sh`, which installs chromium and \
                      chromium-driver, or set STATEHOUSE_CHROMIUM and STATEHOUSE_CHROMEDRIVER";

/// A WebDriver error: its W3C error code (`no such element`, ...) and message.
#[derive(Debug)]
struct WdError(String, String);

impl std::fmt::Display for WdError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0, self.1)
    }
}

/// A headless Chromium driven through its own `chromedriver`.
pub struct Browser {
    http: reqwest::blocking::Client,
    /// `http://127.0.0.1:PORT/session`, then `.../session/ID` once the session exists.
    base: String,
    driver: Child,
    profile: PathBuf,
}

/// An element of the current page.
pub struct Element<'a> {
    browser: &'a Browser,
    /// `/element/ID`
    path: String,
}

/// Calls `f` every 50 ms until it returns `Some`, for up to `timeout`.
fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(t) = f() {
            return Some(t);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

impl Browser {
    pub fn start() -> Browser {
        let env = |name, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        let driver_bin = env("STATEHOUSE_CHROMEDRIVER", "/usr/bin/chromedriver");
        let chromium = env("STATEHOUSE_CHROMIUM", "/usr/bin/chromium");
        if !Path::new(&chromium).is_file() {
            panic!("Chromium not found at {chromium}: {HOW_TO}");
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| panic!("cannot pick a free port: {e}"))
            .port();
        let driver = Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run chromedriver {driver_bin}: {e}; {HOW_TO}"));
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap_or_else(|e| panic!("cannot build the WebDriver HTTP client: {e}"));
        // From here on, a panic drops `b`, which kills the driver and removes the profile.
        let mut b = Browser {
            http,
            base: format!("http://127.0.0.1:{port}/session"),
            driver,
            profile: fresh_dir(),
        };
        let status = format!("http://127.0.0.1:{port}/status");
        let ready = poll(Duration::from_secs(30), || {
            if let Ok(Some(exit)) = b.driver.try_wait() {
                panic!("chromedriver {driver_bin} exited at start ({exit}); {HOW_TO}");
            }
            let up = b.http.get(&status).send().and_then(|r| r.json::<Value>());
            up.is_ok_and(|v| v["value"]["ready"] == true).then_some(())
        });
        if ready.is_none() {
            panic!("chromedriver {driver_bin} not ready after 30 s; {HOW_TO}");
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,900", format!("--user-data-dir={}", b.profile.display()),
                ],
            },
        }}});
        let created = b.try_cmd(Method::POST, "", Some(caps));
        match created.as_ref().map(|v| v["sessionId"].as_str()) {
            Ok(Some(id)) => b.base = format!("{}/{id}", b.base),
            _ => panic!("cannot start Chromium {chromium}: {created:?}; {HOW_TO}"),
        }
        b
    }

    /// One WebDriver request to `{base}{path}`; returns the response's `value`.
    fn try_cmd(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, WdError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), url);
        if method == Method::POST {
            req = req.json(&body.unwrap_or_else(|| json!({})));
        }
        let http = |e: reqwest::Error| WdError("http".to_owned(), e.to_string());
        let resp = req.send().map_err(http)?;
        let ok = resp.status().is_success();
        let value = resp.json::<Value>().map_err(http)?["value"].take();
        let text = |k: &str| value[k].as_str().unwrap_or("").to_owned();
        if ok {
            Ok(value)
        } else {
            Err(WdError(text("error"), text("message")))
        }
    }

    fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let what = format!("{method} {path}");
        self.try_cmd(method, path, body)
            .unwrap_or_else(|e| self.fail(format!("{what} failed: {e}")))
    }

    /// Like `cmd`, for commands that return a string.
    fn get_string(&self, path: &str) -> String {
        match self.cmd(Method::GET, path, None) {
            Value::String(s) => s,
            other => self.fail(format!("{path} returned {other}, not a string")),
        }
    }

    fn fail(&self, what: String) -> ! {
        let url = match self.try_cmd(Method::GET, "/url", None) {
            Ok(Value::String(url)) => url,
            other => format!("<URL unknown: {other:?}>"),
        };
        panic!("{what} (at {url})")
    }

    /// `POST {scope}/element` once: `None` if nothing matches.
    fn find_once(&self, scope: &str, css: &str) -> Option<Element<'_>> {
        let by = json!({"using": "css selector", "value": css});
        match self.try_cmd(Method::POST, &format!("{scope}/element"), Some(by)) {
            Ok(v) => Some(self.element(&v)),
            Err(e) if e.0 == "no such element" => None,
            Err(e) => self.fail(format!("finding `{css}` failed: {e}")),
        }
    }

    fn find_in(&self, scope: &str, css: &str) -> Element<'_> {
        poll(WAIT, || self.find_once(scope, css))
            .unwrap_or_else(|| self.fail(format!("no element matches `{css}` after {WAIT:?}")))
    }

    fn find_all_in(&self, scope: &str, css: &str) -> Vec<Element<'_>> {
        let by = json!({"using": "css selector", "value": css});
        match self.cmd(Method::POST, &format!("{scope}/elements"), Some(by)) {
            Value::Array(items) => items.iter().map(|v| self.element(v)).collect(),
            other => self.fail(format!("finding all `{css}` returned {other}")),
        }
    }

    fn element(&self, value: &Value) -> Element<'_> {
        let Some(id) = value[ELEMENT_KEY].as_str() else {
            self.fail(format!("not an element reference: {value}"))
        };
        let path = format!("/element/{id}");
        Element {
            browser: self,
            path,
        }
    }

    pub fn goto(&self, url: &str) {
        self.cmd(Method::POST, "/url", Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.get_string("/url")
    }

    pub fn title(&self) -> String {
        self.get_string("/title")
    }

    pub fn source(&self) -> String {
        self.get_string("/source")
    }

    /// The first element matching `css`, waiting up to 10 s for it to appear.
    pub fn find(&self, css: &str) -> Element<'_> {
        self.find_in("", css)
    }

    /// Every element matching `css` now (possibly none).
    pub fn find_all(&self, css: &str) -> Vec<Element<'_>> {
        self.find_all_in("", css)
    }

    /// The first element matching `css` now, without waiting.
    pub fn try_find(&self, css: &str) -> Option<Element<'_>> {
        self.find_once("", css)
    }

    pub fn click(&self, css: &str) {
        self.find(css).click();
    }

    /// Chooses `value` in the `<select>` matching `css`.
    pub fn choose(&self, css: &str, value: &str) {
        self.execute(
            "document.querySelector(arguments[0]).value = arguments[1]; return null;",
            vec![json!(css), json!(value)],
        );
    }

    /// Finds `css`, clears it and types `text`.
    pub fn fill(&self, css: &str, text: &str) {
        let el = self.find(css);
        el.clear();
        el.send_keys(text);
    }

    /// Waits up to 10 s until the first element matching `css` has a text containing `needle`.
    pub fn wait_for_text(&self, css: &str, needle: &str) {
        let mut last = None;
        let found = poll(WAIT, || {
            let el = self.find_once("", css)?;
            // The page may replace the element between finding and reading it: try again.
            let text = self.try_cmd(Method::GET, &format!("{}/text", el.path), None);
            let text = text.ok()?.as_str()?.to_owned();
            let found = text.contains(needle).then_some(());
            last = Some(text);
            found
        });
        if found.is_none() {
            self.fail(format!(
                "`{css}` lacks {needle:?} after {WAIT:?}; text: {last:?}"
            ))
        }
    }

    /// Waits up to 10 s until the current URL satisfies `pred`.
    pub fn wait_for_url(&self, pred: impl Fn(&str) -> bool) {
        if poll(WAIT, || pred(&self.url()).then_some(())).is_none() {
            self.fail(format!("the URL did not match after {WAIT:?}"))
        }
    }

    /// Runs `script` as a function body (`arguments[i]` are `args`); returns what it returns.
    pub fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        let body = json!({"script": script, "args": args});
        self.cmd(Method::POST, "/execute/sync", Some(body))
    }

    /// Saves a PNG screenshot of the viewport to `path`.
    pub fn screenshot_png(&self, path: impl AsRef<Path>) {
        let path = path.as_ref();
        let png = base64::engine::general_purpose::STANDARD
            .decode(self.get_string("/screenshot"))
            .unwrap_or_else(|e| panic!("screenshot is not base64: {e}"));
        std::fs::write(path, png)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }

    pub fn set_window_size(&self, width: u32, height: u32) {
        let rect = json!({"width": width, "height": height});
        self.cmd(Method::POST, "/window/rect", Some(rect));
    }

    pub fn accept_alert(&self) {
        self.cmd(Method::POST, "/alert/accept", None);
    }

    pub fn dismiss_alert(&self) {
        self.cmd(Method::POST, "/alert/dismiss", None);
    }

    /// The text of the open alert, confirm or prompt, or `None` if there is none.
    pub fn alert_text(&self) -> Option<String> {
        match self.try_cmd(Method::GET, "/alert/text", None) {
            Ok(v) => Some(v.as_str().unwrap_or_default().to_owned()),
            Err(e) if e.0 == "no such alert" => None,
            Err(e) => self.fail(format!("reading the alert text failed: {e}")),
        }
    }

    pub fn back(&self) {
        self.cmd(Method::POST, "/back", None);
    }

    pub fn refresh(&self) {
        self.cmd(Method::POST, "/refresh", None);
    }

    /// The cookies visible to the current page, as WebDriver cookie objects.
    pub fn cookies(&self) -> Vec<Value> {
        match self.cmd(Method::GET, "/cookie", None) {
            Value::Array(cookies) => cookies,
            other => self.fail(format!("cookies are {other}, not an array")),
        }
    }

    pub fn delete_all_cookies(&self) {
        self.cmd(Method::DELETE, "/cookie", None);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.base.ends_with("/session") {
            let _ = self.try_cmd(Method::DELETE, "", None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        // Chromium may still be writing its profile for a moment after the session ends.
        poll(Duration::from_secs(2), || {
            let gone = std::fs::remove_dir_all(&self.profile).is_ok() || !self.profile.exists();
            gone.then_some(())
        });
    }
}

impl<'a> Element<'a> {
    fn cmd(&self, method: Method, what: &str, body: Option<Value>) -> Value {
        self.browser
            .cmd(method, &format!("{}{what}", self.path), body)
    }

    /// Clicks the element, retrying for up to 2 s while another element covers it.
    pub fn click(&self) {
        let path = format!("{}/click", self.path);
        let mut last = None;
        let clicked = poll(Duration::from_secs(2), || {
            match self.browser.try_cmd(Method::POST, &path, None) {
                Err(e) if e.0 == "element click intercepted" => last = Some(e),
                Err(e) => self.browser.fail(format!("click failed: {e}")),
                Ok(_) => return Some(()),
            }
            None
        });
        if let (None, Some(e)) = (clicked, last) {
            self.browser.fail(format!("click failed for 2 s: {e}"))
        }
    }

    pub fn send_keys(&self, text: &str) {
        self.cmd(Method::POST, "/value", Some(json!({ "text": text })));
    }

    pub fn clear(&self) {
        self.cmd(Method::POST, "/clear", None);
    }

    /// The rendered (visible) text.
    pub fn text(&self) -> String {
        self.browser.get_string(&format!("{}/text", self.path))
    }

    /// The HTML attribute `name`, or `None` if the element does not have it.
    pub fn attr(&self, name: &str) -> Option<String> {
        let value = self.cmd(Method::GET, &format!("/attribute/{name}"), None);
        value.as_str().map(str::to_owned)
    }

    pub fn is_displayed(&self) -> bool {
        self.cmd(Method::GET, "/displayed", None) == true
    }

    /// The first descendant matching `css`, waiting up to 10 s for it to appear.
    pub fn find(&self, css: &str) -> Element<'a> {
        self.browser.find_in(&self.path, css)
    }

    /// Every descendant matching `css` now.
    pub fn find_all(&self, css: &str) -> Vec<Element<'a>> {
        self.browser.find_all_in(&self.path, css)
    }
}

/// A new empty directory for the Chromium profile (removed by [`Browser`]'s drop).
fn fresh_dir() -> PathBuf {
    tempfile::Builder::new()
        .prefix("statehouse-chromium-")
        .tempdir()
        .map(tempfile::TempDir::keep)
        .unwrap_or_else(|e| panic!("cannot create a Chromium profile directory: {e}"))
}
