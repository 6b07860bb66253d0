//! A ledger reached over HTTP (`custody serve`): the client side of `--server URL`. Events
//! are built and signed here, with the caller's keys; only signed events travel. Receipts
//! are checked against the log key the server publishes.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::client::{Access, ClientError};
use crate::core::checkpoint::VerifierKey;
use crate::core::ids::{EventHash, Handle, LedgerName, PartyId, PublicKey};
use crate::core::state::{PartyRecord, UnitRecord};
use crate::core::unit::UnitId;
use crate::core::verify::VerifiedEvent;
use crate::ledger::Receipt;

pub struct Remote {
    base: String,
    name: LedgerName,
    vkey: VerifierKey,
    agent: ureq::Agent,
}

#[derive(Deserialize)]
struct LedgerInfo {
    name: LedgerName,
    verifier_key: String,
}

#[derive(Deserialize)]
struct Entry {
    event: String,
}

fn transport(e: impl std::fmt::Display) -> ClientError {
    ClientError::Transport(e.to_string())
}

/// A problem response as a `ClientError`.
fn refused(status: u16, body: &str) -> ClientError {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    ClientError::Remote {
        status,
        rule: v["rule"].as_str().unwrap_or("unknown").to_owned(),
        detail: v["detail"].as_str().unwrap_or(body).to_owned(),
    }
}

impl Remote {
    /// Connects to a server (`http://host:port`) and learns the ledger's name and log key.
    pub fn connect(base: &str) -> Result<Self, ClientError> {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .build();
        let base = base.trim_end_matches('/').to_owned();
        let info: LedgerInfo = match agent.get(&format!("{base}/v1/ledger")).call() {
            Ok(resp) => resp.into_json().map_err(|e| {
                transport(format!(
                    "{base} did not answer /v1/ledger like a custody server: {e}"
                ))
            })?,
            Err(ureq::Error::Status(code, resp)) => {
                return Err(refused(code, &resp.into_string().unwrap_or_default()))
            }
            Err(e) => return Err(transport(e)),
        };
        let vkey = VerifierKey::parse(&info.verifier_key).map_err(transport)?;
        Ok(Self {
            base,
            name: info.name,
            vkey,
            agent,
        })
    }

    /// GET a JSON resource; `None` on 404.
    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<Option<T>, ClientError> {
        match self.agent.get(&format!("{}{path}", self.base)).call() {
            Ok(resp) => resp.into_json().map(Some).map_err(transport),
            Err(ureq::Error::Status(404, _)) => Ok(None),
            Err(ureq::Error::Status(code, resp)) => {
                Err(refused(code, &resp.into_string().unwrap_or_default()))
            }
            Err(e) => Err(transport(e)),
        }
    }

    /// The body of a GET, as text.
    pub fn get_text(&self, path: &str) -> Result<String, ClientError> {
        match self.agent.get(&format!("{}{path}", self.base)).call() {
            Ok(resp) => resp.into_string().map_err(transport),
            Err(ureq::Error::Status(code, resp)) => {
                Err(refused(code, &resp.into_string().unwrap_or_default()))
            }
            Err(e) => Err(transport(e)),
        }
    }

    /// GET a JSON resource as a value.
    pub fn get_json(&self, path: &str) -> Result<Option<serde_json::Value>, ClientError> {
        self.get(path)
    }
}

impl Access for Remote {
    fn ledger_name(&self) -> &LedgerName {
        &self.name
    }
    fn unit(&self, u: &UnitId) -> Result<Option<UnitRecord>, ClientError> {
        self.get(&format!("/v1/units/{u}"))
    }
    fn party(&self, id: &PartyId) -> Result<Option<PartyRecord>, ClientError> {
        self.get(&format!("/v1/parties/{id}"))
    }
    fn party_by_handle(&self, h: &Handle) -> Result<Option<PartyId>, ClientError> {
        Ok(self
            .get::<PartyRecord>(&format!("/v1/parties/{h}"))?
            .filter(|p| &p.handle == h)
            .map(|p| p.id))
    }
    fn key_owner(&self, k: &PublicKey) -> Result<Option<PartyId>, ClientError> {
        Ok(self
            .parties()?
            .into_iter()
            .find(|p| p.keys.iter().any(|r| &r.key == k))
            .map(|p| p.id))
    }
    fn parties(&self) -> Result<Vec<PartyRecord>, ClientError> {
        Ok(self.get("/v1/parties")?.unwrap_or_default())
    }
    fn event(&self, h: &EventHash) -> Result<Option<Vec<u8>>, ClientError> {
        Ok(self
            .get::<Entry>(&format!("/v1/events/{h}"))?
            .map(|e| e.event.into_bytes()))
    }
    fn append(&self, ev: VerifiedEvent) -> Result<Receipt, ClientError> {
        let resp = self
            .agent
            .post(&format!("{}/v1/events", self.base))
            .set("Content-Type", "application/json")
            .send_bytes(ev.canonical_bytes());
        let r: Receipt = match resp {
            Ok(resp) => resp.into_json().map_err(transport)?,
            Err(ureq::Error::Status(code, resp)) => {
                return Err(refused(code, &resp.into_string().unwrap_or_default()))
            }
            Err(e) => return Err(transport(e)),
        };
        // Trust nothing: the receipt must be for this event, signed by the log key.
        r.signed
            .verify(&self.name, &self.vkey.key)
            .map_err(|e| transport(format!("the server's receipt does not verify: {e}")))?;
        if r.signed.body.event_hash != ev.hash() {
            return Err(transport("the server's receipt is for another event"));
        }
        Ok(r)
    }
}
