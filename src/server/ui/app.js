// custody dashboard: re-verifies, in the browser, every event of the unit on this page:
// each Ed25519 signature over the signing input (FORMAT.md §4) and each event hash (§5),
// with WebCrypto only. Nothing is trusted from the server but the bytes it serves, and no
// request leaves this origin.
"use strict";
(function () {
  const el = document.getElementById("browser-check");
  document.documentElement.classList.add("js");
  if (!el) return;
  const unit = el.dataset.unit;
  const ledger = el.dataset.ledger;
  const enc = new TextEncoder();

  // RFC 8785 (JCS) for the values custody events hold: strings, integers, booleans, null,
  // arrays and objects. Object keys sort by UTF-16 code units (Array.prototype.sort), and
  // JSON.stringify writes strings and integers as JCS does.
  function canon(v) {
    if (v === null || typeof v !== "object") return JSON.stringify(v);
    if (Array.isArray(v)) return "[" + v.map(canon).join(",") + "]";
    return "{" + Object.keys(v).sort().map((k) => JSON.stringify(k) + ":" + canon(v[k])).join(",") + "}";
  }
  function concat(parts) {
    const n = parts.reduce((a, p) => a + p.length, 0);
    const out = new Uint8Array(n);
    let i = 0;
    for (const p of parts) { out.set(p, i); i += p.length; }
    return out;
  }
  function b64(s) {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function hex(buf) {
    return Array.from(new Uint8Array(buf)).map((b) => b.toString(16).padStart(2, "0")).join("");
  }
  const NUL = new Uint8Array([0]);

  async function check() {
    if (!window.crypto || !crypto.subtle) {
      el.dataset.result = "unsupported";
      el.textContent = "Signatures verified by the server. This browser offers no WebCrypto here (it needs HTTPS or localhost), so it did not re-check them.";
      return;
    }
    const resp = await fetch("/v1/units/" + encodeURIComponent(unit) + "/chain", { headers: { accept: "application/json" } });
    if (!resp.ok) throw new Error("the chain could not be read (" + resp.status + ")");
    const chain = await resp.json();
    if (chain.ledger !== ledger) throw new Error("the chain names another ledger");
    let sigs = 0, hashes = 0, bad = 0;
    let prev = null;
    for (const ev of chain.events) {
      const row = document.querySelector('tr[data-hash="' + ev.hash + '"] .bcheck');
      const problems = [];
      // The event hash: SHA-256("custody:v1:event\0" ‖ ledger ‖ 0 ‖ JCS(envelope)).
      const envelope = enc.encode(canon(ev.event));
      const h = hex(await crypto.subtle.digest("SHA-256", concat([enc.encode("custody:v1:event\0"), enc.encode(ledger), NUL, envelope])));
      if (h === ev.hash) hashes++; else problems.push("hash differs");
      // Each signature over "custody:v1:sign\0" ‖ ledger ‖ 0 ‖ JCS(body).
      const msg = concat([enc.encode("custody:v1:sign\0"), enc.encode(ledger), NUL, enc.encode(canon(ev.event.body))]);
      for (const s of ev.event.signatures) {
        let ok = false;
        try {
          const key = await crypto.subtle.importKey("raw", b64(s.key), { name: "Ed25519" }, false, ["verify"]);
          ok = await crypto.subtle.verify({ name: "Ed25519" }, key, b64(s.sig), msg);
        } catch (e) {
          el.dataset.result = "unsupported";
          el.textContent = "Signatures verified by the server. This browser cannot verify Ed25519 with WebCrypto (" + e.message + "), so it did not re-check them.";
          return;
        }
        if (ok) sigs++; else problems.push("a signature does not verify");
      }
      // The chain links: each unit link names the previous event of this unit.
      const links = (ev.event.body.units || []).filter((l) => typeof l === "object" && l.unit === chain.unit.id);
      for (const l of links) if (prev !== null && l.prev !== prev) problems.push("link to the previous event broken");
      prev = ev.hash;
      if (problems.length) bad++;
      if (row) {
        row.textContent = problems.length ? "✗ " + problems.join(", ") : "✓ " + ev.event.signatures.length + " signature(s), hash";
        row.className = "bcheck " + (problems.length ? "bad" : "ok");
      }
    }
    el.dataset.result = bad ? "failed" : "ok";
    el.textContent = bad
      ? "Your browser found " + bad + " event(s) that do not verify. Do not rely on this page; run custody audit."
      : "Your browser verified every one of the " + sigs + " signatures and " + hashes + " event hashes itself (WebCrypto Ed25519 and SHA-256), and every chain link: it relied on nothing the server said.";
  }
  check().catch((e) => {
    el.dataset.result = "error";
    el.textContent = "The browser check could not run: " + e.message;
  });
})();
