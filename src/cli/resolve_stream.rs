//! `custody resolve --all --format json`, written as the units are judged: memory does not
//! grow with the number of units reported (a 10M-event ledger's report is gigabytes).
//!
//! The report's text (`TEXT`, FORMAT.md §14) goes to standard output as it is produced,
//! and, when the log key is at hand, to an unnamed temporary file as well. Its members are
//! those of the report held in memory, in another order: the basis, then `resolutions`
//! (one per line), then `units`, `counts` and `peers`, which are known only at the end.
//! The output is `TEXT` without its closing brace, then `"signed": {"report": TEXT,
//! "signature": …}` with `TEXT` copied back from the file and the signature computed over it
//! in two streamed passes ([`SignedReport::sign_streamed`]): the same object, byte for byte
//! of `TEXT`, that a report held in memory would carry.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt as _;

use anyhow::{Context as _, Result};
use serde::Serialize;

use crate::core::event::SigBytes;
use crate::core::report::SignedReport;
use crate::resolve::{Peers, Resolution};

/// Where the report's text goes: standard output, and the file it is signed from.
pub(super) struct ReportStream {
    stdout: BufWriter<std::io::StdoutLock<'static>>,
    copy: Option<BufWriter<File>>,
    /// Resolutions written so far.
    n: u64,
    /// Standard output was closed by its reader (`| head`): keep signing nothing more.
    closed: bool,
}

fn broken_pipe(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::BrokenPipe
}

impl ReportStream {
    /// Starts the report: `head` (the basis, a JSON object) with `resolutions` opened. With
    /// `signing`, the text is also kept in a temporary file to be signed at the end.
    pub(super) fn start(head: &impl Serialize, signing: bool) -> Result<Self> {
        let copy = if signing {
            Some(BufWriter::new(
                tempfile::tempfile().context("creating a temporary file for the report")?,
            ))
        } else {
            None
        };
        let mut s = Self {
            stdout: BufWriter::with_capacity(1 << 16, std::io::stdout().lock()),
            copy,
            n: 0,
            closed: false,
        };
        let head = serde_json::to_string(head)?;
        let open = head
            .strip_suffix('}')
            .context("the report's basis is a JSON object")?;
        let sep = if open.len() > 1 { "," } else { "" };
        s.text(format!("{open}{sep}\"resolutions\":[").as_bytes())?;
        Ok(s)
    }

    /// Bytes of the report's text.
    fn text(&mut self, b: &[u8]) -> Result<()> {
        if let Some(c) = &mut self.copy {
            c.write_all(b)
                .context("writing the report's temporary copy")?;
        }
        self.stdout_write(b)
    }

    fn stdout_write(&mut self, b: &[u8]) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        match self.stdout.write_all(b) {
            Err(e) if broken_pipe(&e) => {
                self.closed = true;
                Ok(())
            }
            r => r.context("writing to standard output"),
        }
    }

    /// One resolution, on its own line.
    pub(super) fn resolution(&mut self, r: &Resolution) -> Result<()> {
        let sep: &[u8] = if self.n == 0 { b"\n" } else { b",\n" };
        self.text(sep)?;
        self.text(serde_json::to_string(r)?.as_bytes())?;
        self.n += 1;
        Ok(())
    }

    /// Closes the report with what only the end knows, and signs it with `key` if the text
    /// was kept.
    pub(super) fn finish(
        mut self,
        units: u64,
        counts: &std::collections::BTreeMap<&'static str, u64>,
        peers: &Peers,
        admission: &crate::resolve::Admission,
        key: Option<&ed25519_dalek::SigningKey>,
    ) -> Result<()> {
        let tail = format!(
            "\n],\"units\":{units},\"counts\":{},\"peers\":{},\"admission\":{}",
            serde_json::to_string(counts)?,
            serde_json::to_string(peers)?,
            serde_json::to_string(admission)?
        );
        self.text(tail.as_bytes())?;
        match (self.copy.take(), key) {
            (Some(copy), Some(key)) => {
                let mut file = copy
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .context("writing the report's temporary copy")?;
                file.write_all(b"}")
                    .context("writing the report's temporary copy")?;
                let signature = SignedReport::sign_streamed(key, |put| read_all(&file, put))
                    .context("reading the report's temporary copy")?;
                self.stdout_write(b",\"signed\":{\"report\":\"")?;
                let mut failed = None;
                read_all(&file, &mut |piece| {
                    if failed.is_none() {
                        failed = self.stdout_write(&escape(piece)).err();
                    }
                })
                .context("reading the report's temporary copy")?;
                if let Some(e) = failed {
                    return Err(e);
                }
                let sig = serde_json::to_string(&SigBytes(signature.0))?;
                self.stdout_write(format!("\",\"signature\":{sig}}}}}\n").as_bytes())?;
            }
            _ => self.stdout_write(b"}\n")?,
        }
        match self.stdout.flush() {
            Err(e) if broken_pipe(&e) => Ok(()),
            r => r.context("writing to standard output"),
        }
    }
}

/// Hands the whole file to `put`, in pieces, from its start.
fn read_all(file: &File, put: &mut dyn FnMut(&[u8])) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 16];
    let mut at = 0u64;
    loop {
        let n = file.read_at(&mut buf, at)?;
        if n == 0 {
            return Ok(());
        }
        put(&buf[..n]);
        at += n as u64;
    }
}

/// The bytes of a JSON string's contents for `raw` (UTF-8 text, cut anywhere: bytes from
/// 0x80 up pass unchanged, so a cut inside a character is harmless).
fn escape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 8);
    for &b in raw {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            _ => out.push(b),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    proptest::proptest! {
        /// Escaped in pieces cut anywhere, a text reads back as itself.
        #[test]
        fn escaping_in_pieces_round_trips(text in "\\PC{0,80}[\"\\\\\n\t\u{1}é中]{0,10}", cut in 0usize..100) {
            let b = text.as_bytes();
            let cut = cut.min(b.len());
            let mut s = b"\"".to_vec();
            s.extend(escape(&b[..cut]));
            s.extend(escape(&b[cut..]));
            s.push(b'"');
            let back: String = serde_json::from_slice(&s).expect("a JSON string");
            proptest::prop_assert_eq!(back, text);
        }
    }
}
