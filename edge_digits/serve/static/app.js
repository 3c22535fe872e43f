/* The page of edge-digits serve: read a photo through /v1/read, classify a drawn digit through /v1/classify.
 *
 * No framework and no build step, so one file in three parts: talking to the server, the photo, the pad.
 * Whatever the server answers is shown with textContent or drawn on a canvas, never parsed as markup. URLs are
 * relative, so the page also works behind a proxy under a path prefix. window.edgeDigits exposes the pieces the
 * tests call (renderLines, reduce, readPhoto, classify, clearPad).
 */
"use strict";

window.edgeDigits = (() => {
  const $ = (id) => document.getElementById(id);

  /* ---- talking to the server --------------------------------------------------------------------------- */

  /** POST body to url and return the JSON answer; throw an Error with the server's message on a 4xx/5xx. */
  async function post(url, body, type) {
    let resp;
    try {
      resp = await fetch(url, {method: "POST", body, headers: {"Content-Type": type}});
    } catch (err) {
      throw new Error(`cannot reach the server (${err.message})`);
    }
    const text = await resp.text();
    let doc = null;
    try {
      doc = JSON.parse(text);
    } catch (_) {
      doc = null;
    }
    if (!resp.ok) {
      const message = doc && typeof doc.error === "string" ? doc.error : text.slice(0, 300) || resp.statusText;
      throw new Error(`${message || "the server failed"} (HTTP ${resp.status})`);
    }
    if (doc === null || typeof doc !== "object") {
      throw new Error(`the server's answer is not JSON (HTTP ${resp.status})`);
    }
    return doc;
  }

  /** Show message in el, or hide el when message is null. */
  function showError(el, message) {
    el.textContent = message === null ? "" : message;
    el.hidden = message === null;
  }

  const percent = (c) => (typeof c === "number" && isFinite(c) ? `${Math.round(c * 100)}%` : "");

  /* ---- read a photo ------------------------------------------------------------------------------------ */

  const photo = {img: null, answer: null, url: null};
  let readSeq = 0;

  /** The lines as text: one li per line, its string in .line (selectable, copied as is), confidence beside. */
  function renderLines(lines) {
    const list = $("read-lines");
    list.replaceChildren();
    for (const line of lines) {
      const li = document.createElement("li");
      const text = document.createElement("span");
      text.className = "line";
      text.textContent = String(line.text);
      const conf = document.createElement("span");
      conf.className = "conf";
      conf.textContent = percent(line.confidence);
      conf.title = "confidence of the line's weakest digit";
      li.append(text, conf);
      list.append(li);
    }
    $("read-copy").disabled = lines.length === 0;
  }

  function loadImage(url) {
    return new Promise((resolve, reject) => {
      const img = new Image();
      img.onload = () => resolve(img);
      img.onerror = () => reject(new Error("the browser cannot show this file as an image"));
      img.src = url;
    });
  }

  /** Send the file as it is to /v1/read; show the photo at once and what was read when the answer comes. */
  async function readPhoto(file) {
    const seq = ++readSeq;
    const status = $("read-status");
    showError($("read-error"), null);
    renderLines([]);
    if (photo.url) URL.revokeObjectURL(photo.url);
    photo.url = URL.createObjectURL(file);
    photo.img = null;
    photo.answer = null;
    drawPhoto();
    status.textContent = `Reading ${file.name}…`;
    loadImage(photo.url).then((img) => {
      if (seq === readSeq) {
        photo.img = img;
        drawPhoto();
      }
    }, () => null);
    const t0 = performance.now();
    try {
      const answer = await post("v1/read", file, file.type || "application/octet-stream");
      if (seq !== readSeq) return;
      const lines = Array.isArray(answer.lines) ? answer.lines : [];
      photo.answer = answer;
      renderLines(lines);
      drawPhoto();
      const seconds = ((performance.now() - t0) / 1000).toFixed(2);
      status.textContent = lines.length
        ? `${file.name}: ${lines.length} line${lines.length > 1 ? "s" : ""} read in ${seconds} s`
        : `${file.name}: no digits found (${seconds} s)`;
    } catch (err) {
      if (seq !== readSeq) return;
      status.textContent = `${file.name}: not read`;
      showError($("read-error"), err.message);
    }
  }

  /** A digit's or line's box in the photo's pixels: frame_box, or box where the photo was read as it is. */
  function photoBox(item, answer) {
    if (Array.isArray(item.frame_box)) return item.frame_box;
    const asIs = !answer.page && !answer.rotation && (answer.scale === undefined || answer.scale === 1);
    return asIs && Array.isArray(item.box) ? item.box : null;
  }

  /** Draw the photo scaled to fit, then the page outline, line boxes, digit boxes, digits and confidences. */
  function drawPhoto() {
    const canvas = $("photo-view");
    const img = photo.img;
    if (!img) {
      canvas.width = canvas.height = 0;
      canvas.style.width = canvas.style.height = "0";
      return;
    }
    const iw = img.naturalWidth, ih = img.naturalHeight;
    const maxW = Math.max(1, canvas.parentElement.clientWidth);
    const top = canvas.getBoundingClientRect().top + window.scrollY;     // the whole photo in view when it can be
    const maxH = Math.max(240, Math.min(window.innerHeight * 0.85, window.innerHeight - top - 16));
    const scale = Math.min(1, maxW / iw, maxH / ih);
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(iw * scale)), h = Math.max(1, Math.round(ih * scale));
    canvas.style.width = `${w}px`;
    canvas.style.height = `${h}px`;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr * scale, 0, 0, dpr * scale, 0, 0);    // photo pixels from here on
    ctx.drawImage(img, 0, 0);
    if (photo.answer) drawAnswer(ctx, photo.answer, 1 / scale);
  }

  /** Overlay an answer on the photo; px is one CSS pixel in photo pixels (lines and text keep their size). */
  function drawAnswer(ctx, answer, px) {
    const page = answer.page;
    if (Array.isArray(page) && page.length >= 3) {
      ctx.save();
      ctx.strokeStyle = "#ffb000";
      ctx.lineWidth = 3 * px;
      ctx.setLineDash([8 * px, 5 * px]);
      ctx.beginPath();
      page.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.closePath();
      ctx.stroke();
      ctx.restore();
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    for (const line of Array.isArray(answer.lines) ? answer.lines : []) {
      const lb = photoBox(line, answer);
      if (lb) {
        ctx.strokeStyle = "rgba(0, 140, 255, 0.9)";
        ctx.lineWidth = 2 * px;
        ctx.strokeRect(lb[0] - 3 * px, lb[1] - 3 * px, lb[2] + 6 * px, lb[3] + 6 * px);
      }
      // labels go across the line: above and below a line that runs across the photo, else left and right
      const across = !lb || lb[2] >= lb[3];
      const digitLabel = labeller(ctx, across, -1, `700 ${14 * px}px system-ui, sans-serif`, px);
      const confLabel = labeller(ctx, across, +1, `${10 * px}px system-ui, sans-serif`, px);
      for (const d of Array.isArray(line.digits) ? line.digits : []) {
        const b = photoBox(d, answer);
        if (!b) continue;
        const color = typeof d.confidence === "number" && d.confidence < 0.6 ? "#ff3b30" : "#00c853";
        ctx.strokeStyle = color;
        ctx.lineWidth = 1.5 * px;
        ctx.strokeRect(b[0], b[1], b[2], b[3]);
        digitLabel(String(d.digit), b, color);
        confLabel(typeof d.confidence === "number" ? String(Math.round(d.confidence * 100)) : "", b, "#ffffff");
      }
    }
  }

  /**
   * Draws the labels of one line's digits on one side of them (side -1: above or left, +1: below or right), as
   * text on a dark backing (fillText: drawn, never parsed). A label that would overlap one already drawn on
   * that side moves a row further out, so narrow digits keep readable labels.
   */
  function labeller(ctx, across, side, font, px) {
    const rows = [];                 // per row out from the digits: the spans taken along the line
    return (text, box, color) => {
      if (!text) return;
      ctx.font = font;
      const m = ctx.measureText(text);
      const w = m.width + 4 * px;
      const h = (m.actualBoundingBoxAscent || 0) + (m.actualBoundingBoxDescent || 0) + 4 * px;
      const [cx, cy] = [box[0] + box[2] / 2, box[1] + box[3] / 2];
      const span = across ? [cx - w / 2, cx + w / 2] : [cy - h / 2, cy + h / 2];
      let r = 0;
      while (rows[r] && rows[r].some(([a, b]) => span[0] < b && a < span[1])) r++;
      (rows[r] = rows[r] || []).push(span);
      const gap = 2 * px;
      let [x, y] = [cx, cy];
      if (across) y = side < 0 ? box[1] - gap - h * (r + 0.5) : box[1] + box[3] + gap + h * (r + 0.5);
      else x = side < 0 ? box[0] - gap - w * (r + 0.5) : box[0] + box[2] + gap + w * (r + 0.5);
      ctx.fillStyle = "rgba(0, 0, 0, 0.65)";
      ctx.fillRect(x - w / 2, y - h / 2, w, h);
      ctx.fillStyle = color;
      ctx.fillText(text, x, y + px);
    };
  }

  async function copyLines() {
    const text = [...$("read-lines").querySelectorAll(".line")].map((el) => el.textContent).join("\n");
    try {
      await navigator.clipboard.writeText(text);      // only in a secure context (localhost, https)
      $("read-status").textContent = "Lines copied";
    } catch (_) {
      const range = document.createRange();           // elsewhere: select them for the user to copy
      range.selectNodeContents($("read-lines"));
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      $("read-status").textContent = "Lines selected: copy them with Ctrl+C";
    }
  }

  function setUpPhoto() {
    const input = $("photo"), drop = $("drop");
    input.addEventListener("change", () => {
      const file = input.files && input.files[0];
      if (file) readPhoto(file);
      input.value = "";             // the same file chosen again is read again
    });
    drop.addEventListener("dragenter", (e) => {
      e.preventDefault();
      drop.classList.add("over");
    });
    drop.addEventListener("dragover", (e) => {
      e.preventDefault();
      e.dataTransfer.dropEffect = "copy";
      drop.classList.add("over");
    });
    drop.addEventListener("dragleave", (e) => {
      if (!drop.contains(e.relatedTarget)) drop.classList.remove("over");
    });
    drop.addEventListener("drop", (e) => {
      e.preventDefault();
      drop.classList.remove("over");
      const file = e.dataTransfer.files && e.dataTransfer.files[0];
      if (file) readPhoto(file);
    });
    // a file dropped beside the zone must not make the browser leave the page
    window.addEventListener("dragover", (e) => e.preventDefault());
    window.addEventListener("drop", (e) => e.preventDefault());
    $("read-copy").addEventListener("click", copyLines);
  }

  /* ---- draw a digit ------------------------------------------------------------------------------------ */

  const PAD_LINE = 1 / 13;        // the pad's stroke width, as a share of its side
  const INK_WIDTH = 0.14;         // the stroke width the model sees, as a share of the drawing's extent:
                                  // digits drawn so carry as much ink as MNIST's (about 104 pixels' worth)
  const MIN_INK = 0.02;           // ... and at least this share of the pad (a dot, a tiny drawing)
  const THROTTLE_MS = 150;        // at most one classification this often while drawing
  const UPSAMPLE = 8;             // the reduction draws at 8x the 20 px box, then averages 8x8 blocks

  const strokes = [];             // each stroke a list of [x, y] in 0..1 of the pad's side
  let active = null;              // the pointer drawing now
  let version = 0;                // bumped on every change of the drawing
  let cleared = 0;                // the version the pad was last cleared at: older answers are dropped
  let shown = -1;                 // the version whose answer is shown
  let inFlight = false, timer = 0, lastSent = 0;

  /** Draw the strokes of drawing in white, width wide (in the context's units). */
  function strokePaths(ctx, drawing, width) {
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.lineWidth = width;
    ctx.strokeStyle = ctx.fillStyle = "#fff";
    for (const s of drawing) {
      if (s.length === 1) {       // a tap: a dot
        ctx.beginPath();
        ctx.arc(s[0][0], s[0][1], width / 2, 0, 2 * Math.PI);
        ctx.fill();
        continue;
      }
      ctx.beginPath();
      ctx.moveTo(s[0][0], s[0][1]);
      for (let i = 1; i < s.length; i++) ctx.lineTo(s[i][0], s[i][1]);
      ctx.stroke();
    }
  }

  function redrawPad() {
    const pad = $("pad");
    const ctx = pad.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, pad.width, pad.height);
    ctx.setTransform(pad.width, 0, 0, pad.height, 0, 0);
    strokePaths(ctx, strokes, PAD_LINE);
  }

  /** Match the pad's pixels to its size on screen (sharp strokes at any size and pixel ratio). */
  function sizePad() {
    const pad = $("pad");
    const side = Math.round(pad.getBoundingClientRect().width * (window.devicePixelRatio || 1));
    if (side > 0 && side !== pad.width) {
      pad.width = pad.height = side;
      redrawPad();
    }
  }

  /**
   * The drawing as MNIST digits were made: the ink cropped to its bounding box, its longer side scaled to 20 px
   * keeping the aspect (area averaging, so grey levels 0..255), placed in 28x28 with the ink's centre of mass at
   * the centre; white on black. The strokes are drawn again for this with a width in proportion to the
   * drawing's size, so a small digit drawn with a finger looks to the model like a large one.
   * drawing: strokes of [x, y] points in 0..1; inkWidth: that width as a share of the drawing's extent.
   * Returns 784 bytes (row-major), or null for an empty drawing.
   */
  function reduce(drawing = strokes, inkWidth = INK_WIDTH) {
    const points = drawing.flat();
    if (!points.length) return null;
    let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    for (const [x, y] of points) {
      x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
    }
    const width = Math.max(inkWidth * Math.max(x1 - x0, y1 - y0), MIN_INK);
    const iw = x1 - x0 + width, ih = y1 - y0 + width;     // the ink's box: round caps reach width/2 out
    const longer = Math.max(iw, ih);
    const tw = Math.max(1, Math.round(20 * iw / longer)), th = Math.max(1, Math.round(20 * ih / longer));
    const W = tw * UPSAMPLE, H = th * UPSAMPLE, s = 20 * UPSAMPLE / longer;
    const canvas = document.createElement("canvas");
    canvas.width = W;
    canvas.height = H;
    const ctx = canvas.getContext("2d", {willReadFrequently: true});
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, W, H);
    ctx.setTransform(s, 0, 0, s, (W - iw * s) / 2 - (x0 - width / 2) * s, (H - ih * s) / 2 - (y0 - width / 2) * s);
    strokePaths(ctx, drawing, width);
    const rgba = ctx.getImageData(0, 0, W, H).data;
    const small = new Float64Array(tw * th);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) small[Math.floor(y / UPSAMPLE) * tw + Math.floor(x / UPSAMPLE)] += rgba[(y * W + x) * 4];
    }
    let mass = 0, mx = 0, my = 0;
    for (let y = 0; y < th; y++) {
      for (let x = 0; x < tw; x++) {
        const v = (small[y * tw + x] /= UPSAMPLE * UPSAMPLE);
        mass += v; mx += v * (x + 0.5); my += v * (y + 0.5);
      }
    }
    const clamp = (v, hi) => Math.min(Math.max(v, 0), hi);
    const ox = clamp(Math.round(14 - (mass ? mx / mass : tw / 2)), 28 - tw);
    const oy = clamp(Math.round(14 - (mass ? my / mass : th / 2)), 28 - th);
    const out = new Uint8Array(784);
    for (let y = 0; y < th; y++) {
      for (let x = 0; x < tw; x++) out[(oy + y) * 28 + ox + x] = Math.round(small[y * tw + x]);
    }
    return out;
  }

  function showInput(pixels) {
    const ctx = $("pad-28").getContext("2d");
    const img = ctx.createImageData(28, 28);
    for (let i = 0; i < 784; i++) {
      const v = pixels ? pixels[i] : 0;
      img.data.set([v, v, v, 255], i * 4);
    }
    ctx.putImageData(img, 0, 0);
  }

  /** The predicted digit, large, and the ten scores as bars (for the drawing of version v). */
  function showPrediction(prediction, v) {
    const digit = $("pad-digit");
    digit.textContent = prediction ? String(prediction.digit) : "";
    digit.dataset.version = String(v);
    const scores = prediction && Array.isArray(prediction.scores) ? prediction.scores : [];
    $("pad-scores").querySelectorAll("li").forEach((li, i) => {
      const score = typeof scores[i] === "number" ? scores[i] : 0;
      li.querySelector(".fill").style.width = `${Math.max(0, Math.min(1, score)) * 100}%`;
      li.querySelector(".value").textContent = prediction ? score.toFixed(2) : "";
      li.classList.toggle("best", Boolean(prediction) && i === prediction.digit);
    });
  }

  /** Classify the drawing now: one request at a time, and a change made meanwhile is sent when it returns. */
  async function classify() {
    clearTimeout(timer);
    timer = 0;
    if (inFlight) return;
    const v = version;
    const pixels = reduce();
    showInput(pixels);
    if (!pixels) {
      shown = v;
      showPrediction(null, v);
      return;
    }
    inFlight = true;
    lastSent = performance.now();
    let binary = "";
    for (const b of pixels) binary += String.fromCharCode(b);
    try {
      const doc = await post("v1/classify", JSON.stringify({images: [btoa(binary)]}), "application/json");
      if (v >= cleared && v > shown) {      // while drawing, a slightly old answer is still worth showing
        shown = v;
        showError($("pad-error"), null);
        showPrediction(doc.predictions && doc.predictions[0], v);
      }
    } catch (err) {
      if (v >= cleared) showError($("pad-error"), err.message);
    } finally {
      inFlight = false;
      if (v !== version) {
        if (active === null) classify();
        else classifySoon();
      }
    }
  }

  /** While drawing: classify at most every THROTTLE_MS. */
  function classifySoon() {
    if (!timer) timer = setTimeout(classify, Math.max(0, lastSent + THROTTLE_MS - performance.now()));
  }

  function changed() {
    version++;
    $("pad").dataset.version = String(version);
  }

  function padPoint(e) {
    const r = $("pad").getBoundingClientRect();
    return [(e.clientX - r.left) / r.width, (e.clientY - r.top) / r.height];
  }

  function setUpPad() {
    const pad = $("pad");
    const scores = $("pad-scores");
    for (let d = 0; d < 10; d++) {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.className = "label";
      name.textContent = String(d);
      const track = document.createElement("span");
      track.className = "track";
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.display = "block";
      track.append(fill);
      const value = document.createElement("span");
      value.className = "value";
      li.append(name, track, value);
      scores.append(li);
    }
    pad.addEventListener("pointerdown", (e) => {
      if (active !== null || (e.pointerType === "mouse" && e.button !== 0)) return;
      e.preventDefault();
      active = e.pointerId;
      pad.setPointerCapture(e.pointerId);
      strokes.push([padPoint(e)]);
      changed();
      redrawPad();
      classifySoon();
    });
    pad.addEventListener("pointermove", (e) => {
      if (e.pointerId !== active) return;
      const stroke = strokes[strokes.length - 1];
      const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
      for (const ev of events.length ? events : [e]) stroke.push(padPoint(ev));
      changed();
      redrawPad();
      classifySoon();
    });
    const end = (e) => {
      if (e.pointerId !== active) return;
      active = null;
      classify();
    };
    pad.addEventListener("pointerup", end);
    pad.addEventListener("pointercancel", end);
    pad.addEventListener("lostpointercapture", end);
    $("pad-clear").addEventListener("click", clearPad);
    sizePad();
    redrawPad();
    showInput(null);
    showPrediction(null, version);
    pad.dataset.version = String(version);
  }

  function clearPad() {
    strokes.length = 0;
    active = null;
    changed();
    cleared = version;
    redrawPad();
    showError($("pad-error"), null);
    classify();
  }

  /* ---- start ------------------------------------------------------------------------------------------- */

  let resizeQueued = false;
  window.addEventListener("resize", () => {
    if (resizeQueued) return;
    resizeQueued = true;
    requestAnimationFrame(() => {
      resizeQueued = false;
      sizePad();
      drawPhoto();
    });
  });
  document.addEventListener("DOMContentLoaded", () => {
    setUpPhoto();
    setUpPad();
  });

  return {renderLines, reduce, readPhoto, classify, clearPad};
})();
