//! Replay mode on the connection: the answer to a request comes from a recording.

use bytes::BytesMut;
use icap_proto::{Event, Headers, ResponseHead, StatusCode, chunked};
use sha2::{Digest, Sha256};

use super::{Connection, Next, Stream};
use crate::journal::Transaction;
use crate::replay::{Replay, Unmatched, decode_answer};

impl<S: Stream> Connection<S> {
    /// Answers the request whose head was just read from the recording.
    #[allow(clippy::too_many_lines)] // one recorded exchange, read and answered in order: preview, 100 Continue, final answer
    pub(crate) async fn replay(
        &mut self,
        rec: &mut Transaction,
        method: icap_proto::Method,
        body: Option<icap_proto::BodyKind>,
        filename: Option<String>,
        replay: &Replay,
    ) -> Next {
        let mut hasher = Sha256::new();
        if body.is_some() || method == icap_proto::Method::Options {
            loop {
                match self.next_event().await {
                    Ok(Event::Data(d)) => {
                        hasher.update(&d);
                        rec.body_len = rec
                            .body_len
                            .saturating_add(u64::try_from(d.len()).unwrap_or(u64::MAX));
                    }
                    Ok(Event::PreviewEnd { ieof: true }) => rec.ieof = true,
                    Ok(Event::PreviewEnd { ieof: false }) => {
                        // The digest needs the whole body.
                        if !self.exchange.may_continue() {
                            return Next::Close;
                        }
                        let mut out = BytesMut::new();
                        ResponseHead::new(StatusCode::CONTINUE)
                            .encode(method, &mut out)
                            .expect("100 Continue always encodes");
                        if !self.write(&out).await || self.exchange.handle_continue_sent().is_err()
                        {
                            return Next::Close;
                        }
                        rec.continued = true;
                    }
                    Ok(Event::End(_)) => break,
                    Ok(Event::Head(_)) => {}
                    Err(_) => return Next::Close,
                }
            }
        } else {
            while !self.exchange.is_request_done() {
                match self.next_event().await {
                    Ok(Event::End(_)) => break,
                    Ok(_) => {}
                    Err(_) => return Next::Close,
                }
            }
        }
        rec.complete = true;
        rec.body_sha256 = crate::journal::hex(&hasher.finalize());
        let body = body.map(|_| (rec.body_sha256.as_str(), rec.body_len));
        let entry = replay.find(
            method,
            &rec.service,
            body,
            filename.as_deref(),
            rec.allow_204,
        );
        let answer = match entry {
            Some(e) => match tokio::fs::read(&e.res).await {
                Ok(bytes) => decode_answer(&bytes, method, self.state.settings.limits)
                    .map_err(|why| format!("{}: {why}", e.res.display())),
                Err(err) => Err(format!("reading {}: {err}", e.res.display())),
            },
            None => Err(format!(
                "no recording matches {} {} (body sha256 {}, {} bytes, file {:?})",
                method.as_str(),
                rec.service,
                rec.body_sha256,
                rec.body_len,
                filename
            )),
        };
        let answer = match answer {
            Ok(a) => a,
            Err(why) => {
                tracing::warn!(error = %why, "replay: unmatched request");
                rec.fault = Some("replay_unmatched".to_owned());
                let Unmatched::Status(code) = replay.unmatched() else {
                    return Next::Close;
                };
                let mut h =
                    ResponseHead::new(StatusCode::new(code).unwrap_or(StatusCode::SERVER_ERROR));
                if h.status.canonical_reason().is_empty() {
                    h = h
                        .with_reason("Replay Unmatched")
                        .expect("static reason is valid");
                }
                let istag = replay
                    .istag(&rec.service)
                    .unwrap_or_else(|| format!("\"{}\"", self.state.istag()));
                let _ = h.headers.append("ISTag", istag.as_str());
                let clean: String = why
                    .chars()
                    .map(|c| if c.is_ascii_graphic() { c } else { ' ' })
                    .collect();
                let _ = h.headers.append("X-Mock-Replay-Error", clean.as_str());
                let _ = h.headers.append("Connection", "close");
                let mut out = BytesMut::new();
                if h.encode(method, &mut out).is_ok() {
                    let _ = self.write(&out).await;
                    rec.status = Some(h.status.as_u16());
                }
                return Next::Close;
            }
        };
        let mut out = BytesMut::new();
        if answer.head.encode(method, &mut out).is_err() {
            return Next::Close;
        }
        let off_rules = self.exchange.handle_response_sent(&answer.head).is_err();
        rec.status = Some(answer.head.status.as_u16());
        if answer.head.body.is_some() {
            for d in &answer.body {
                chunked::encode_chunk(d, &mut out);
                if out.len() >= 64 * 1024 {
                    if !self.write(&out).await {
                        return Next::Close;
                    }
                    out.clear();
                }
            }
            chunked::encode_last_chunk(false, &Headers::new(), &mut out);
        }
        if !self.write(&out).await
            || off_rules
            || self.exchange.handle_response_end().is_err()
            || !self.exchange.reuse().is_yes()
        {
            return Next::Close;
        }
        Next::KeepAlive
    }
}
