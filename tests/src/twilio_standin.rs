//! A local stand-in for Twilio's Messages API, on loopback.
//!
//! It checks each request as Twilio documents it: `POST
//! /2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP basic auth with the
//! Account SID and auth token, `application/x-www-form-urlencoded`, a `To` in
//! E.164, a `Body` of at most 1,600 characters, and exactly one of `From` or
//! `MessagingServiceSid`. It answers `201` with a message resource, or with
//! Twilio's real error shape (`{"code", "message", "more_info", "status"}`)
//! for numbers told to fail. Like Twilio's Messages API, it deduplicates
//! nothing: every accepted request is a text, whatever headers it carries.
//! It can also lose its answer after creating a message ([`Scripted::LoseAnswer`]),
//! as a timeout does, and lists messages as `GET Messages.json?To=…&DateSent>=…`
//! does (`date_created` in RFC 2822).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the stand-in answers for one `To` number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scripted {
    /// Twilio error code with its HTTP status (e.g. 21610 / 400).
    Error(u32, u16),
    /// A bare HTTP status (e.g. 503) with Twilio's 5xx body.
    Status(u16),
    /// Creates the message, then drops the connection without answering.
    LoseAnswer,
}

/// A request the stand-in accepted as a send.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedSend {
    /// `To`.
    pub to: String,
    /// `Body`.
    pub body: String,
    /// The idempotency token.
    pub idempotency_token: Option<String>,
    /// The message SID it answered with.
    pub sid: String,
    /// When the stand-in received it (wall clock).
    pub received_at: std::time::SystemTime,
    /// Its `date_created`: the stand-in's clock (see [`TwilioStandIn::clock`]).
    pub created: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Default)]
struct State {
    sends: Vec<RecordedSend>,
    script: HashMap<String, Scripted>,
    rejected: Vec<String>,
    requests: usize,
    lookups: usize,
    clock: Option<chrono::DateTime<chrono::Utc>>,
}

/// The running stand-in.
#[derive(Debug, Clone)]
pub struct TwilioStandIn {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Account SID it expects.
    pub account_sid: String,
    /// Auth token it expects.
    pub auth_token: String,
    state: Arc<Mutex<State>>,
}

impl TwilioStandIn {
    /// Starts on a free loopback port.
    pub async fn start(account_sid: &str, auth_token: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        let standin = Self {
            base_url: format!("http://127.0.0.1:{port}"),
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            state: Arc::new(Mutex::new(State::default())),
        };
        let server = standin.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let server = server.clone();
                tokio::spawn(async move { server.serve(stream).await });
            }
        });
        standin
    }

    /// Makes sends to `to` answer as scripted.
    pub fn script(&self, to: &str, answer: Scripted) {
        self.state
            .lock()
            .expect("lock")
            .script
            .insert(to.to_owned(), answer);
    }

    /// Every accepted send: each is a text.
    pub fn sends(&self) -> Vec<RecordedSend> {
        self.state.lock().expect("lock").sends.clone()
    }

    /// Requests refused as malformed, with the reason.
    pub fn rejected(&self) -> Vec<String> {
        self.state.lock().expect("lock").rejected.clone()
    }

    /// Send requests received, including repeats and errors.
    pub fn requests(&self) -> usize {
        self.state.lock().expect("lock").requests
    }

    /// Message list lookups received.
    pub fn lookups(&self) -> usize {
        self.state.lock().expect("lock").lookups
    }

    /// Stamps messages as created at `at` (tests run at fixed instants).
    pub fn clock(&self, at: chrono::DateTime<chrono::Utc>) {
        self.state.lock().expect("lock").clock = Some(at);
    }

    /// Forgets what `to` was told to answer.
    pub fn unscript(&self, to: &str) {
        self.state.lock().expect("lock").script.remove(to);
    }

    async fn serve(&self, mut stream: TcpStream) {
        let mut buffer = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            let Ok(n) = stream.read(&mut chunk).await else {
                return;
            };
            if n == 0 {
                return;
            }
            buffer.extend_from_slice(&chunk[..n]);
            if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_owned();
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buffer.len() < head_end + length {
            let Ok(n) = stream.read(&mut chunk).await else {
                return;
            };
            if n == 0 {
                break;
            }
            buffer.extend_from_slice(&chunk[..n]);
        }
        let body = buffer[head_end..(head_end + length).min(buffer.len())].to_vec();
        let (status, json) = if request_line.starts_with("GET ") {
            self.list(&request_line, &headers)
        } else {
            self.answer(&request_line, &headers, &body)
        };
        if status == 0 {
            // The message exists; its answer is lost on the way back.
            let _ = stream.shutdown().await;
            return;
        }
        let reason = match status {
            200 => "OK",
            201 => "Created",
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            429 => "Too Many Requests",
            _ => "Error",
        };
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}",
            json.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }

    fn reject(&self, status: u16, code: u32, message: &str) -> (u16, String) {
        self.state
            .lock()
            .expect("lock")
            .rejected
            .push(message.to_owned());
        (status, error_body(code, message, status))
    }

    fn answer(
        &self,
        request_line: &str,
        headers: &HashMap<String, String>,
        body: &[u8],
    ) -> (u16, String) {
        self.state.lock().expect("lock").requests += 1;
        let expected_path = format!(
            "POST /2010-04-01/Accounts/{}/Messages.json HTTP/1.1",
            self.account_sid
        );
        if request_line != expected_path {
            return self.reject(404, 20404, "The requested resource was not found");
        }
        let expected_auth = format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.account_sid, self.auth_token))
        );
        if headers.get("authorization") != Some(&expected_auth) {
            return self.reject(401, 20003, "Authenticate");
        }
        if !headers
            .get("content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
        {
            return self.reject(400, 21000, "content type must be form encoded");
        }
        let Ok(form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) else {
            return self.reject(400, 21000, "malformed form");
        };
        let field = |name: &str| form.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let Some(to) = field("To") else {
            return self.reject(400, 21604, "A 'To' phone number is required.");
        };
        if !to.starts_with('+') || to.len() < 8 || !to[1..].bytes().all(|b| b.is_ascii_digit()) {
            return self.reject(400, 21211, "The 'To' number is not a valid phone number.");
        }
        let Some(text) = field("Body") else {
            return self.reject(400, 21602, "Message body is required.");
        };
        if text.chars().count() > 1600 {
            return self.reject(
                400,
                21617,
                "The concatenated message body exceeds the 1600 character limit.",
            );
        }
        match (field("From"), field("MessagingServiceSid")) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                return self.reject(
                    400,
                    21603,
                    "A 'From' or 'MessagingServiceSid' parameter is required.",
                )
            }
        }
        let token = headers.get("i-twilio-idempotency-token").cloned();
        let mut state = self.state.lock().expect("lock");
        let lose_answer = match state.script.get(&to).copied() {
            Some(Scripted::Error(code, status)) => {
                return (status, error_body(code, "scripted error", status))
            }
            Some(Scripted::Status(status)) => {
                return (status, error_body(20500, "Internal Server Error", status))
            }
            Some(Scripted::LoseAnswer) => true,
            None => false,
        };
        let sid = format!("SM{:032x}", state.sends.len() + 1);
        let created = state.clock.unwrap_or_else(chrono::Utc::now);
        state.sends.push(RecordedSend {
            to: to.clone(),
            body: text.clone(),
            idempotency_token: token,
            sid: sid.clone(),
            received_at: std::time::SystemTime::now(),
            created,
        });
        if lose_answer {
            return (0, String::new());
        }
        (
            201,
            message_body(&sid, &to, &text, &self.account_sid, created),
        )
    }

    /// `GET /2010-04-01/Accounts/{AccountSid}/Messages.json?To=…&DateSent>=…`:
    /// the account's messages to `To`, newest first.
    fn list(&self, request_line: &str, headers: &HashMap<String, String>) -> (u16, String) {
        let expected = format!(
            "GET /2010-04-01/Accounts/{}/Messages.json",
            self.account_sid
        );
        let Some(target) = request_line.strip_suffix(" HTTP/1.1") else {
            return self.reject(400, 20001, "malformed request line");
        };
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if path != expected {
            return self.reject(404, 20404, "The requested resource was not found");
        }
        let expected_auth = format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.account_sid, self.auth_token))
        );
        if headers.get("authorization") != Some(&expected_auth) {
            return self.reject(401, 20003, "Authenticate");
        }
        let params: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
        let to = params
            .iter()
            .find(|(k, _)| k == "To")
            .map(|(_, v)| v.clone());
        let mut state = self.state.lock().expect("lock");
        state.lookups += 1;
        let messages: Vec<serde_json::Value> = state
            .sends
            .iter()
            .rev()
            .filter(|s| to.as_deref().is_none_or(|t| t == s.to))
            .map(|s| {
                serde_json::from_str(&message_body(
                    &s.sid,
                    &s.to,
                    &s.body,
                    &self.account_sid,
                    s.created,
                ))
                .unwrap_or_default()
            })
            .collect();
        (
            200,
            serde_json::json!({ "messages": messages, "page": 0, "page_size": 100 }).to_string(),
        )
    }
}

fn error_body(code: u32, message: &str, status: u16) -> String {
    serde_json::json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    })
    .to_string()
}

fn message_body(
    sid: &str,
    to: &str,
    body: &str,
    account: &str,
    created: chrono::DateTime<chrono::Utc>,
) -> String {
    serde_json::json!({
        "sid": sid,
        "date_created": created.to_rfc2822(),
        "account_sid": account,
        "to": to,
        "body": body,
        "status": "queued",
        "num_segments": "1",
        "direction": "outbound-api",
        "api_version": "2010-04-01",
        "uri": format!("/2010-04-01/Accounts/{account}/Messages/{sid}.json"),
    })
    .to_string()
}
