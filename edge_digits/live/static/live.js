// The live view of edge-digits run --http: follows /events (Server-Sent Events, reconnecting) and keeps the
// MJPEG stream going. Every string from the reader is put on the page with textContent, never as HTML.
"use strict";

(() => {
  const STAGES = ["capture", "page", "preprocess", "segmentation", "rejection", "inference", "drawing"];
  const COLOURS = ["#7aa2f7", "#ffae3b", "#3ccf6e", "#ff5a5a", "#b48ead", "#2ac3de", "#c0caf5"];
  const HISTORY = 100;          // readings kept for the latency plot
  const STALE_MS = 3000;        // no reading for this long: say so
  const LOW_CONFIDENCE = 0.8;   // the annotated view draws such digits orange; the page does the same

  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = String(text);
    return node;
  };

  const history = [];
  let shownLines = null;
  let lastReadingAt = 0;
  let source = null;
  let retryMs = 1000;

  function setStatus(text, kind) {
    const s = $("status");
    s.textContent = text;
    s.className = "status " + (kind || "");
  }

  function showLines(lines) {
    const key = JSON.stringify(lines);
    if (key === shownLines) return;   // untouched while the same: a selection being copied stays
    shownLines = key;
    const box = $("lines");
    box.replaceChildren();
    if (!lines.length) {
      box.append(el("p", "empty", "no digits"));
      return;
    }
    for (const text of lines) box.append(el("div", "line", text));
  }

  function showDigits(digits) {
    const list = $("digits");
    list.replaceChildren();
    for (const d of digits) {
      const conf = Number(d.confidence) || 0;
      const item = el("li", conf < LOW_CONFIDENCE ? "low" : "");
      item.title = "confidence " + (conf * 100).toFixed(1) + "%";
      item.append(el("span", "digit", d.digit), el("span", "conf", Math.round(conf * 100) + "%"));
      const bar = el("span", "bar");
      bar.style.width = Math.max(2, Math.round(conf * 100)) + "%";
      item.append(bar);
      list.append(item);
    }
    $("digit-count").textContent = digits.length + (digits.length === 1 ? " digit" : " digits");
  }

  function showPower(r) {
    const p = $("power");
    if (r.power_meter === null || r.power_meter === undefined || r.power_meter === "") {
      p.textContent = "no meter";
      p.className = "muted";
    } else if (typeof r.power_w === "number") {
      p.textContent = r.power_w.toFixed(3) + " W";
      p.className = "";
      p.title = String(r.power_meter);
    } else {
      p.textContent = "no reading";
      p.className = "muted";
    }
  }

  function buildLegend() {
    const legend = $("legend");
    STAGES.forEach((stage, i) => {
      const item = el("li");
      const swatch = el("span", "swatch");
      swatch.style.background = COLOURS[i];
      item.append(swatch, el("span", "", stage), el("span", "ms", "–"));
      item.dataset.stage = stage;
      legend.append(item);
    });
  }

  function updateLegend(timings) {
    for (const item of $("legend").children) {
      const v = Number(timings[item.dataset.stage]);
      item.querySelector(".ms").textContent = Number.isFinite(v) ? v.toFixed(1) + " ms" : "–";
    }
    const total = STAGES.reduce((sum, s) => sum + (Number(timings[s]) || 0), 0);
    $("latency-total").textContent = total.toFixed(1) + " ms a frame";
  }

  function drawLatency() {
    const canvas = $("latency");
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
    const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, w, h);
    if (!history.length) return;
    const totals = history.map((t) => STAGES.reduce((sum, s) => sum + (Number(t[s]) || 0), 0));
    const top = niceCeil(Math.max(1, ...totals));
    const pad = 4 * dpr;
    const plotH = h - pad;
    const x = (i) => (HISTORY === 1 ? 0 : (i + HISTORY - history.length) * (w / (HISTORY - 1)));
    const y = (v) => h - (v / top) * plotH;
    const below = new Array(history.length).fill(0);
    STAGES.forEach((stage, s) => {
      const above = history.map((t, i) => below[i] + (Number(t[stage]) || 0));
      ctx.beginPath();
      ctx.moveTo(x(0), y(above[0]));
      for (let i = 1; i < history.length; i++) ctx.lineTo(x(i), y(above[i]));
      for (let i = history.length - 1; i >= 0; i--) ctx.lineTo(x(i), y(below[i]));
      ctx.closePath();
      ctx.fillStyle = COLOURS[s];
      ctx.globalAlpha = 0.8;
      ctx.fill();
      above.forEach((v, i) => { below[i] = v; });
    });
    ctx.globalAlpha = 1;
    ctx.strokeStyle = getComputedStyle(document.body).color;
    ctx.globalAlpha = 0.35;
    ctx.setLineDash([4 * dpr, 4 * dpr]);
    ctx.beginPath();
    ctx.moveTo(0, y(top));
    ctx.lineTo(w, y(top));
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.globalAlpha = 1;
    ctx.fillStyle = getComputedStyle(document.body).color;
    ctx.font = 11 * dpr + "px system-ui, sans-serif";
    ctx.textBaseline = "top";
    ctx.fillText(top + " ms", 3 * dpr, y(top) + 2 * dpr);
  }

  function niceCeil(v) {
    const step = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (m * step >= v) return m * step;
    return 10 * step;
  }

  function onReading(r) {
    lastReadingAt = Date.now();
    setStatus("live", "ok");
    showLines(Array.isArray(r.lines) ? r.lines.map(String) : []);
    showDigits(Array.isArray(r.digits) ? r.digits : []);
    $("fps").textContent = typeof r.fps === "number" ? r.fps.toFixed(1) : "–";
    $("frame").textContent = r.frame === null || r.frame === undefined ? "–" : String(r.frame);
    $("model").textContent = r.model || "–";
    $("backend").textContent = r.backend || "–";
    $("delegate").textContent = r.delegate || "none";
    $("source").textContent = r.source ? String(r.source) : "";
    showPower(r);
    const timings = r.timings_ms && typeof r.timings_ms === "object" ? r.timings_ms : {};
    history.push(timings);
    if (history.length > HISTORY) history.shift();
    updateLegend(timings);
    drawLatency();
  }

  function restartVideo() {
    $("video").src = "/stream.mjpg?t=" + Date.now();
  }

  function connect() {
    let broken = false;
    source = new EventSource("/events");
    source.addEventListener("open", () => {
      retryMs = 1000;
      if (broken) restartVideo();
      broken = false;
      setStatus("waiting for a frame…", "warn");
    });
    source.addEventListener("reading", (e) => {
      try {
        onReading(JSON.parse(e.data));
      } catch (err) {
        console.warn("bad reading event", err);
      }
    });
    source.addEventListener("error", () => {
      broken = true;
      setStatus("reconnecting…", "bad");
      if (source.readyState === EventSource.CLOSED) {   // the browser gave up (e.g. a 503): try again later
        source.close();
        setTimeout(() => { connect(); restartVideo(); }, retryMs);
        retryMs = Math.min(retryMs * 2, 15000);
      }
    });
  }

  function copyLines() {
    const text = Array.from(document.querySelectorAll("#lines .line"), (n) => n.textContent).join("\n");
    const done = () => {
      const b = $("copy");
      b.textContent = "Copied";
      setTimeout(() => { b.textContent = "Copy"; }, 1200);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, () => selectLines());
    } else {
      selectLines();
      try {
        if (document.execCommand("copy")) done();
      } catch (err) {
        console.warn("copy failed", err);
      }
    }
  }

  function selectLines() {
    const range = document.createRange();
    range.selectNodeContents($("lines"));
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  function start() {
    buildLegend();
    $("copy").addEventListener("click", copyLines);
    $("video").addEventListener("error", () => setTimeout(restartVideo, 2000));
    window.addEventListener("resize", drawLatency);
    setInterval(() => {
      if (lastReadingAt && Date.now() - lastReadingAt > STALE_MS && source && source.readyState === EventSource.OPEN) {
        setStatus("no new frames", "warn");
      }
    }, 1000);
    connect();
  }

  start();
})();
