// fleetboot web UI: small progressive enhancement on server-rendered pages. Every change goes
// through the JSON API (/api/v1) with the session cookie and the page's CSRF token in the
// X-CSRF-Token header; the server decides what the session may do.
"use strict";
(function () {
  const csrf = document.body.dataset.csrf || "";
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  function status(msg, isError) {
    const s = $("#status");
    if (!s) return;
    s.textContent = msg;
    s.classList.toggle("is-error", !!isError);
  }

  // api calls the JSON API; it resolves to the decoded body and rejects with the server's
  // {"error": "..."} message.
  async function api(method, url, body, headers) {
    const h = Object.assign({ "X-CSRF-Token": csrf, "Accept": "application/json" }, headers || {});
    let payload = body;
    if (body !== undefined && !(body instanceof Blob) && typeof body !== "string") {
      h["Content-Type"] = "application/json";
      payload = JSON.stringify(body);
    }
    const res = await fetch(url, { method, headers: h, body: payload, credentials: "same-origin" });
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error: text }; }
    if (!res.ok) {
      const err = new Error((data && data.error) || res.status + " " + res.statusText);
      err.status = res.status;
      throw err;
    }
    return data;
  }

  function human(n) {
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + " " + u[i];
  }
  function duration(sec) {
    if (!isFinite(sec) || sec < 0) return "—";
    if (sec < 1) return Math.round(sec * 1000) + " ms";
    if (sec < 60) return sec.toFixed(1) + " s";
    const m = Math.floor(sec / 60), s = Math.round(sec % 60);
    if (m < 60) return m + " min " + s + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  // ---- ISO upload: the resumable upload API (POST /uploads, PATCH chunks, finish). ----
  const CHUNK = 8 << 20;
  // BUSY_MAX bounds the wait for a busy server in all (ms), BUSY_POLL one wait (s).
  const BUSY_MAX = 3600 * 1000, BUSY_POLL = 5;
  // sleepUnless waits ms milliseconds, or less once stop() says so.
  function sleepUnless(ms, stop) {
    return new Promise((resolve) => {
      const end = performance.now() + ms;
      const tick = () => (stop() || performance.now() >= end) ? resolve() : setTimeout(tick, 200);
      tick();
    });
  }
  function uploadKey(f, name) { return "fleetboot-upload:" + name + ":" + f.size + ":" + f.lastModified; }

  function sendChunk(id, offset, blob, onProgress, xhrRef) {
    return new Promise((resolve, reject) => {
      const x = new XMLHttpRequest();
      xhrRef.current = x;
      x.open("PATCH", "/api/v1/uploads/" + encodeURIComponent(id));
      x.setRequestHeader("Upload-Offset", String(offset));
      x.setRequestHeader("X-CSRF-Token", csrf);
      x.setRequestHeader("Content-Type", "application/offset+octet-stream");
      x.upload.onprogress = (e) => onProgress(e.loaded);
      x.onload = () => {
        if (x.status >= 200 && x.status < 300) {
          resolve(parseInt(x.getResponseHeader("Upload-Offset"), 10));
        } else {
          let msg = x.status + "";
          try { msg = JSON.parse(x.responseText).error || msg; } catch (e) { /* not JSON */ }
          const err = new Error(msg); err.status = x.status;
          err.retryAfter = parseInt(x.getResponseHeader("Retry-After") || "", 10) || 0;
          reject(err);
        }
      };
      x.onerror = () => reject(new Error("network error"));
      x.onabort = () => { const e = new Error("paused"); e.paused = true; reject(e); };
      x.send(blob);
    });
  }

  async function serverOffset(id) {
    const res = await fetch("/api/v1/uploads/" + encodeURIComponent(id), { method: "HEAD", credentials: "same-origin" });
    if (!res.ok) return -1;
    return parseInt(res.headers.get("Upload-Offset") || "0", 10);
  }

  function setupUpload() {
    const form = $("#upload-form");
    if (!form) return;
    const bar = $("#upload-bar"), text = $("#upload-text"), box = $("#upload-progress");
    const pause = $("#upload-cancel"), start = $("#upload-start");
    const xhrRef = { current: null };
    let paused = false;
    pause.addEventListener("click", () => { paused = true; if (xhrRef.current) xhrRef.current.abort(); });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = $("#iso-file").files[0];
      if (!f) return;
      const name = ($("#iso-name").value || f.name).trim();
      const key = uploadKey(f, name);
      paused = false;
      box.hidden = false; pause.hidden = false; start.disabled = true;
      try {
        let id = localStorage.getItem(key), offset = -1;
        if (id) offset = await serverOffset(id);
        if (offset < 0) {
          const up = await api("POST", "/api/v1/uploads", { name: name, size: f.size });
          id = up.id; offset = up.offset || 0;
          localStorage.setItem(key, id);
        }
        const t0 = performance.now(), startOffset = offset;
        const show = (done) => {
          const pct = f.size ? Math.floor(done * 100 / f.size) : 100;
          bar.value = pct; bar.textContent = pct + " %";
          const secs = (performance.now() - t0) / 1000, sent = done - startOffset;
          const rate = secs > 0 ? sent / secs : 0;
          const eta = rate > 0 ? (f.size - done) / rate : Infinity;
          text.textContent = human(done) + " of " + human(f.size) + " (" + pct + " %) · " +
            (rate > 0 ? human(rate) + "/s" : "—") + " · ETA " + (done >= f.size ? "0 s" : duration(eta));
        };
        show(offset);
        let retries = 0, busySince = 0;
        while (offset < f.size) {
          try {
            offset = await sendChunk(id, offset, f.slice(offset, Math.min(offset + CHUNK, f.size)), (n) => show(offset + n), xhrRef);
            retries = 0; busySince = 0;
            show(offset);
          } catch (e) {
            if (e.paused || paused) throw e;
            // A busy server (all --max-uploads slots taken) is not a failure: wait as it asks,
            // asking again at least every few seconds, for up to BUSY_MAX like the CLI does.
            if (e.status === 503 && e.retryAfter > 0) {
              if (!busySince) busySince = performance.now();
              if (performance.now() - busySince > BUSY_MAX) {
                throw new Error("the server was still busy after " + duration(BUSY_MAX / 1000) + ": " + e.message);
              }
              const wait = Math.min(e.retryAfter, BUSY_POLL);
              text.textContent = "Server busy: " + e.message + " · trying again in " + wait + " s (Pause stops)";
              await sleepUnless(wait * 1000, () => paused);
              if (paused) { const p = new Error("paused"); p.paused = true; throw p; }
              continue;
            }
            // A conflict or a dropped connection: ask the server what it holds and go on.
            if (++retries > 5) throw e;
            await new Promise((r) => setTimeout(r, 500 * retries));
            const o = await serverOffset(id);
            if (o < 0) throw e;
            offset = o;
          }
        }
        text.textContent = "Verifying and indexing " + name + "…";
        const iso = await api("POST", "/api/v1/uploads/" + encodeURIComponent(id) + "/finish");
        localStorage.removeItem(key);
        bar.value = 100; bar.textContent = "100 %";
        text.textContent = (iso.existed ? iso.message : "Published " + iso.name) + " · " + human(f.size) + " (100 %)";
        status("ISO " + iso.name + " uploaded.");
        addISORow(iso);
      } catch (e) {
        if (e.paused || paused) {
          text.textContent = "Paused at " + bar.value + " %. Choose the same file and press Upload to resume.";
        } else {
          status("Upload failed: " + e.message, true);
          text.textContent = "Upload failed: " + e.message;
        }
      } finally {
        pause.hidden = true; start.disabled = false;
      }
    });
  }

  function addISORow(iso) {
    const tb = $("#iso-table tbody");
    if (!tb || $$("a", tb).some((a) => a.getAttribute("href") === "/ui/isos/" + iso.id)) return;
    const tr = document.createElement("tr");
    tr.className = "new";
    const d = iso.detected || {};
    const cells = [null, [d.name || d.family || "unknown", d.version].filter(Boolean).join(" "), d.arch || "",
      String((d.recipes || []).length), human(iso.size), "just now"];
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      if (i === 0) {
        const a = document.createElement("a");
        a.href = "/ui/isos/" + iso.id; a.textContent = iso.name; td.appendChild(a);
      } else td.textContent = c;
      tr.appendChild(td);
    });
    if (document.body.dataset.admin === "true") {
      const td = document.createElement("td"), b = document.createElement("button");
      b.type = "button"; b.className = "danger"; b.textContent = "Delete";
      b.dataset.deleteIso = iso.id; b.dataset.name = iso.name;
      bindISODelete(b);
      td.appendChild(b); tr.appendChild(td);
    }
    $$("tr", tb).forEach((r) => { if (r.cells.length === 1) r.remove(); });
    tb.prepend(tr);
  }

  function bindISODelete(b) {
    b.addEventListener("click", async () => {
      const id = b.dataset.deleteIso, name = b.dataset.name;
      if (!confirm("Delete ISO " + name + "?")) return;
      try {
        await api("DELETE", "/api/v1/isos/" + encodeURIComponent(id));
        b.closest("tr").remove();
        status("Deleted " + name + ".");
      } catch (e) {
        if (e.status === 409 && confirm(e.message + "\n\nDelete anyway? Profiles using it become broken.")) {
          try {
            await api("DELETE", "/api/v1/isos/" + encodeURIComponent(id) + "?force=1");
            b.closest("tr").remove();
            status("Deleted " + name + " (profiles using it are now broken).");
          } catch (e2) { status(e2.message, true); }
        } else status("Not deleted: " + e.message, true);
      }
    });
  }

  function setupDeletes() {
    $$("[data-delete-iso]").forEach(bindISODelete);
    $$("[data-delete-rule]").forEach((b) => b.addEventListener("click", async () => {
      if (!confirm("Delete this rule?")) return;
      try { await api("DELETE", "/api/v1/rules/" + b.dataset.deleteRule); b.closest("tr").remove(); status("Rule deleted."); }
      catch (e) { status(e.message, true); }
    }));
  }

  // ---- Profile editor: validation on the fly, preview, save. ----
  function profileBody() {
    const v = (id) => $(id).value;
    const vars = {};
    v("#p-vars").split("\n").forEach((l) => {
      const i = l.indexOf("=");
      if (i > 0) vars[l.slice(0, i).trim()] = l.slice(i + 1).trim();
    });
    const keys = v("#p-keys").split("\n").map((s) => s.trim()).filter(Boolean);
    return { name: v("#p-name").trim(), iso: v("#p-iso"), entry: v("#p-entry").trim(), mode: v("#p-mode"),
      template_kind: v("#p-kind"), template: v("#p-template"), extra_args: v("#p-args"), vars: vars, ssh_keys: keys };
  }
  function setupProfile() {
    const form = $("#profile-form");
    // Checking is a POST, which a read-only session may not make; it sees the profile only.
    if (!form || document.body.dataset.admin !== "true") return;
    const out = $("#p-check");
    let timer = null, seq = 0;
    const check = async () => {
      const my = ++seq, body = profileBody();
      if (!body.iso) { out.className = "check"; out.textContent = "Choose an ISO to check the profile."; return; }
      try {
        const r = await api("POST", "/api/v1/profiles/check", body);
        if (my !== seq) return;
        out.className = "check ok";
        out.textContent = "Profile is valid" + (r.secure_boot && !r.secure_boot.ready ? " (Secure Boot: " + (r.secure_boot.reason || "not ready") + ")" : "") + ".";
      } catch (e) {
        if (my !== seq) return;
        out.className = "check fail";
        out.textContent = "Problem: " + e.message;
      }
    };
    form.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(check, 350); });
    form.addEventListener("change", () => { clearTimeout(timer); timer = setTimeout(check, 100); });
    if ($("#p-iso").value) check();
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = profileBody();
      try {
        await api("PUT", "/api/v1/profiles/" + encodeURIComponent(body.name), body);
        status("Profile " + body.name + " saved.");
        if (form.dataset.new === "true") location.assign("/ui/profiles/" + encodeURIComponent(body.name) + "?saved=1");
      } catch (e) { status("Not saved: " + e.message, true); }
    });
    $("#preview-btn").addEventListener("click", async () => {
      const mac = $("#preview-mac").value, pre = $("#preview-out");
      try {
        const r = await api("POST", "/api/v1/profiles/check?preview=1" + (mac ? "&mac=" + encodeURIComponent(mac) : ""), profileBody());
        pre.textContent = r.preview ? "# " + r.preview.file + "\n" + r.preview.body : "(this profile has no unattended template)";
      } catch (e) { pre.textContent = "Cannot render: " + e.message; }
    });
  }

  // ---- Machines: bulk assign and reinstall, add, per-machine actions. ----
  async function assign(macs, profile, install) {
    const body = { profile: profile };
    if (install && profile) body.state = "install-pending";
    for (const mac of macs) await api("PATCH", "/api/v1/machines/" + mac, body);
  }
  function setupMachines() {
    const all = $("#select-all");
    if (all) all.addEventListener("change", () => $$(".pick").forEach((c) => { c.checked = all.checked; }));
    const picked = () => $$(".pick").filter((c) => c.checked).map((c) => c.value);
    const ba = $("#bulk-assign");
    if (ba) ba.addEventListener("click", async () => {
      const macs = picked();
      if (!macs.length) { status("Select machines first.", true); return; }
      try { await assign(macs, $("#bulk-profile").value, $("#bulk-install").checked); location.reload(); }
      catch (e) { status(e.message, true); }
    });
    const br = $("#bulk-reinstall");
    if (br) br.addEventListener("click", async () => {
      const macs = picked();
      if (!macs.length) { status("Select machines first.", true); return; }
      try {
        for (const m of macs) await api("POST", "/api/v1/machines/" + m + "/reinstall");
        location.reload();
      } catch (e) { status(e.message, true); }
    });
    const add = $("#machine-add");
    if (add) add.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        await api("POST", "/api/v1/machines", { mac: $("#add-mac").value.trim(), hostname: $("#add-host").value.trim() || undefined });
        location.reload();
      } catch (e) { status(e.message, true); }
    });
    const acts = $("#machine-actions");
    if (acts) {
      const mac = acts.dataset.mac;
      $("#ma-assign").addEventListener("click", async () => {
        try { await assign([mac], $("#ma-profile").value, $("#ma-install").checked); location.reload(); }
        catch (e) { status(e.message, true); }
      });
      $("#ma-reinstall").addEventListener("click", async () => {
        try { await api("POST", "/api/v1/machines/" + mac + "/reinstall"); location.reload(); }
        catch (e) { status(e.message, true); }
      });
    }
  }

  // ---- Rules ----
  function pairs(s) {
    const o = {};
    s.split(",").forEach((p) => { const i = p.indexOf("="); if (i > 0) o[p.slice(0, i).trim()] = p.slice(i + 1).trim(); });
    return Object.keys(o).length ? o : undefined;
  }
  function setupRules() {
    const f = $("#rule-add");
    if (!f) return;
    f.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        const r = await api("POST", "/api/v1/rules", { priority: parseInt($("#r-prio").value, 10) || 0, mac_prefix: $("#r-prefix").value.trim() || undefined,
          labels: pairs($("#r-labels").value), hardware: pairs($("#r-hw").value), profile: $("#r-profile").value, install: $("#r-install").checked });
        status("Rule added; it applied to " + r.applied_to + " machines.");
        setTimeout(() => location.reload(), 600);
      } catch (e) { status(e.message, true); }
    });
  }

  // ---- One machine's live timeline. ----
  function setupTimeline() {
    const table = $("#timeline");
    if (!table) return;
    const tb = $("tbody", table);
    const fmt = (d) => d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
    // A step's duration is the time until the next step began.
    const durations = () => {
      const rows = $$("tr", tb);
      rows.forEach((r, i) => {
        const next = rows[i + 1];
        if (next && !r.dataset.fixedDuration) r.cells[4].textContent = duration(next.dataset.time - r.dataset.time);
      });
    };
    const seen = new Set($$("tr", tb).map((r) => r.dataset.id));
    const add = (ev) => {
      if (seen.has(String(ev.id))) return;
      seen.add(String(ev.id));
      const t = new Date(ev.time);
      const tr = document.createElement("tr");
      tr.dataset.id = ev.id; tr.dataset.time = t.getTime() / 1000;
      tr.className = "new";
      // A kernel or initrd download says its size and time: "<path>: <n> bytes in <s> s".
      const dl = ev.kind === "download" ? /: (\d+) bytes in ([0-9.]+) s$/.exec(ev.detail || "") : null;
      [fmt(t), ev.kind, ev.detail || "", dl ? human(Number(dl[1])) : "", dl ? duration(Number(dl[2])) : "—"].forEach((c) => {
        const td = document.createElement("td"); td.textContent = c; tr.appendChild(td);
      });
      if (dl) tr.dataset.fixedDuration = "1";
      tb.appendChild(tr);
      durations();
      if (ev.kind === "state") {
        const s = $("#m-state-now");
        // "install-pending → installing: why": the state it went to.
        const m = /→\s*([a-z-]+)/.exec(ev.detail || "");
        if (s && m) { s.textContent = m[1]; s.className = "state state-" + m[1]; }
      }
    };
    durations();
    const url = table.dataset.stream;
    if (!url || !window.EventSource) return;
    const es = new EventSource(url);
    const live = $("#live");
    es.onopen = () => { live.hidden = false; };
    es.onerror = () => { live.hidden = true; };
    const onEvent = (m) => { try { add(JSON.parse(m.data)); } catch (e) { /* not an event */ } };
    es.onmessage = onEvent;
    es.addEventListener("event", onEvent);
  }

  setupUpload();
  setupDeletes();
  setupProfile();
  setupMachines();
  setupRules();
  setupTimeline();
})();
