//! A DevTools connection of our own to the page chromedriver opened, for
//! commands that may take longer than chromedriver allows.
//!
//! chromedriver sends `Page.printToPDF` (for WebDriver's Print, and for
//! `goog/cdp/execute` alike) with a fixed limit of 10 s, which no session
//! timeout changes: the print fails with "Timed out receiving message from
//! renderer: 10.000". The whole book takes about 8 s to print on a quiet
//! two-core machine, and more while anything else runs, so a print through
//! chromedriver fails as soon as the machine is busy or the book grows.
//! Chromium accepts more than one DevTools client, so the print is sent
//! here instead, over the page's own WebSocket at the `debuggerAddress`
//! chromedriver reports, and the caller chooses the time limit. The PDF
//! comes back as a stream, read in chunks, so its size is not bounded by
//! one WebSocket message.

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value as Json, json};
use tokio::net::TcpStream;
use tokio_websockets::{ClientBuilder, MaybeTlsStream, Message, WebSocketStream};

/// Bytes asked for in each `IO.read` of a PDF stream.
const READ_CHUNK: u64 = 1 << 20;

/// One DevTools WebSocket session with a page.
pub struct DevTools {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl DevTools {
    /// Connects to page `target_id` of the browser whose DevTools listen at `debugger` (`host:port`).
    pub async fn connect(debugger: &str, target_id: &str) -> Result<DevTools> {
        let url = page_socket_url(debugger, target_id)?;
        let (ws, _) = ClientBuilder::new()
            .uri(&url)
            .with_context(|| format!("DevTools address {url}"))?
            .connect()
            .await
            .with_context(|| format!("connecting to DevTools at {url}"))?;
        Ok(DevTools { ws, next_id: 1 })
    }

    /// Sends one command and waits for its answer, skipping the events in between.
    pub async fn call(&mut self, method: &str, params: Json) -> Result<Json> {
        let id = self.next_id;
        self.next_id += 1;
        let request = json!({ "id": id, "method": method, "params": params });
        self.ws
            .send(Message::text(request.to_string()))
            .await
            .with_context(|| format!("DevTools {method}: sending"))?;
        while let Some(message) = self.ws.next().await {
            let message = message.with_context(|| format!("DevTools {method}: receiving"))?;
            let Some(text) = message.as_text() else {
                continue;
            };
            let reply: Json = serde_json::from_str(text)
                .with_context(|| format!("DevTools {method}: an answer that is not JSON"))?;
            if reply.get("id").and_then(Json::as_u64) != Some(id) {
                continue;
            }
            return answer(method, reply);
        }
        bail!("DevTools {method}: the browser closed the connection before answering")
    }

    /// Prints the page with `Page.printToPDF` and `params`, returning the PDF's bytes.
    pub async fn print_to_pdf(&mut self, params: Json) -> Result<Vec<u8>> {
        let mut params = params;
        params["transferMode"] = json!("ReturnAsStream");
        let printed = self.call("Page.printToPDF", params).await?;
        let handle = printed
            .get("stream")
            .and_then(Json::as_str)
            .context("Page.printToPDF returned no stream handle")?
            .to_string();
        let mut pdf = Vec::new();
        loop {
            let chunk = self
                .call("IO.read", json!({ "handle": handle, "size": READ_CHUNK }))
                .await?;
            append_chunk(&mut pdf, &chunk)?;
            if chunk.get("eof").and_then(Json::as_bool).unwrap_or(false) {
                break;
            }
        }
        self.call("IO.close", json!({ "handle": handle })).await?;
        Ok(pdf)
    }
}

/// `ws://host:port/devtools/page/<id>`: the WebSocket of one page target.
fn page_socket_url(debugger: &str, target_id: &str) -> Result<String> {
    let valid_id = !target_id.is_empty() && target_id.chars().all(|c| c.is_ascii_alphanumeric());
    if debugger.is_empty() || debugger.contains('/') || !valid_id {
        bail!("no DevTools page at debugger address {debugger:?}, target {target_id:?}");
    }
    Ok(format!("ws://{debugger}/devtools/page/{target_id}"))
}

/// The `result` of a DevTools answer, or its `error` as an error.
fn answer(method: &str, reply: Json) -> Result<Json> {
    if let Some(error) = reply.get("error") {
        let message = error
            .get("message")
            .and_then(Json::as_str)
            .unwrap_or("no message");
        return Err(anyhow!("DevTools {method}: {message} ({error})"));
    }
    Ok(reply.get("result").cloned().unwrap_or(Json::Null))
}

/// Appends one `IO.read` answer's data, decoding base64 when the browser says it is.
fn append_chunk(pdf: &mut Vec<u8>, chunk: &Json) -> Result<()> {
    let data = chunk.get("data").and_then(Json::as_str).unwrap_or_default();
    if chunk
        .get("base64Encoded")
        .and_then(Json::as_bool)
        .unwrap_or(false)
    {
        base64::engine::general_purpose::STANDARD
            .decode_vec(data, pdf)
            .context("IO.read returned bad base64")?;
    } else {
        pdf.extend_from_slice(data.as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_socket_url_names_the_page_target() {
        assert_eq!(
            page_socket_url("localhost:40211", "5E1C0A").unwrap(),
            "ws://localhost:40211/devtools/page/5E1C0A"
        );
        assert!(page_socket_url("", "5E1C0A").is_err());
        assert!(page_socket_url("localhost:1", "../browser").is_err());
    }

    #[test]
    fn an_error_answer_is_an_error_with_its_message() {
        let err = answer(
            "Page.printToPDF",
            json!({ "id": 3, "error": { "code": -32000, "message": "Printing failed" } }),
        )
        .unwrap_err();
        assert!(err.to_string().contains("Printing failed"), "{err}");
        let ok = answer("IO.close", json!({ "id": 4, "result": {} })).unwrap();
        assert_eq!(ok, json!({}));
    }

    #[test]
    fn chunks_are_decoded_when_base64_and_kept_when_not() {
        let mut pdf = Vec::new();
        append_chunk(&mut pdf, &json!({ "data": "JVBE", "base64Encoded": true })).unwrap();
        append_chunk(
            &mut pdf,
            &json!({ "data": "F-1.4", "base64Encoded": false }),
        )
        .unwrap();
        assert_eq!(pdf, b"%PDF-1.4");
        let bad = append_chunk(&mut pdf, &json!({ "data": "%%%", "base64Encoded": true }));
        assert!(bad.is_err());
    }
}
