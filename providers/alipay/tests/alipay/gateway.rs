//! A scripted local gateway for the client tests (no network beyond 127.0.0.1).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use paygate_alipay::{Client, RetryPolicy, Signer, Verifier};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::fixtures::{APP_ID, fixture, now};

pub struct Recorded {
    /// `GET /path?query HTTP/1.1`
    pub request_line: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

/// Answers each connection with the next scripted (status, body), and records what came in.
pub struct FakeGateway {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeGateway {
    pub async fn start(script: Vec<(u16, String)>) -> FakeGateway {
        let script = script
            .into_iter()
            .map(|(status, body)| (status, body.into_bytes()))
            .collect();
        FakeGateway::start_bytes(script).await
    }

    pub async fn start_bytes(script: Vec<(u16, Vec<u8>)>) -> FakeGateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/gateway.do", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let recorded = requests.clone();
        tokio::spawn(async move {
            for (status, body) in script {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let request = read_request(&mut socket).await;
                recorded.lock().unwrap().push(request);
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: text/html;charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
                let _ = socket.shutdown().await;
            }
        });
        FakeGateway { url, requests }
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    pub fn client(&self) -> Client {
        client_for(&self.url)
    }
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Recorded {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "connection closed mid-request");
        data.extend_from_slice(&buf[..n]);
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let request_line = String::from_utf8_lossy(&data[..head_end])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let head = String::from_utf8_lossy(&data[..head_end]).to_lowercase();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_owned))
            .unwrap_or_default()
    };
    let length: usize = header("content-length").parse().unwrap_or(0);
    while data.len() < head_end + length {
        let n = socket.read(&mut buf).await.unwrap();
        data.extend_from_slice(&buf[..n]);
    }
    Recorded {
        request_line,
        content_type: header("content-type"),
        body: data[head_end..head_end + length].to_vec(),
    }
}

pub fn client_for(url: &str) -> Client {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    // The client holds its keys in `Arc`s, so it gets its own copies of the fixture keys.
    let app_key = Signer::from_pem_or_base64(&fixture("test_app_private_key_pkcs8.pem")).unwrap();
    let alipay_public_key =
        Verifier::from_pem_or_base64(&fixture("test_alipay_public_key.pem")).unwrap();
    Client::new(
        http,
        url,
        APP_ID,
        Arc::new(app_key),
        Arc::new(alipay_public_key),
        Arc::new(now),
    )
    .with_retry(RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
    })
}
