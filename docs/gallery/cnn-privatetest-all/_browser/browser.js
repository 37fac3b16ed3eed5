// xai-fer image browser: a confusion matrix whose cells filter the images below it, each image shown with every
// method's map. Data comes from data.js (window.xaiFerBrowser); every string from it is set with textContent,
// never as HTML. Thumbnails are tiles of sprite sheets, set as backgrounds only when scrolled near the view, and
// the list grows as it is scrolled, so thousands of images open at once.
(function () {
  "use strict";
  const D = window.xaiFerBrowser;
  const root = document.getElementById("xai-browser");
  if (!D || !root) return;
  const script = document.currentScript;
  const base = script ? script.src : document.baseURI;  // the sheets lie beside this script
  const PAGE = 60;  // images added to the list at a time, as it scrolls
  const MATRIX_MAX = 40;  // classes up to which the matrix is drawn (as the confusion figures do)
  const SMALL = 96, LARGE = 240;  // displayed size of a thumbnail's longer side, in the list and in the detail
  const labelled = Array.isArray(D.true);
  const N = D.count;
  const mapIndex = D.methods.map(m => {
    if (!m.rows) return null;
    const at = new Map();
    m.rows.forEach((row, k) => at.set(row, k));
    return at;
  });
  const state = {truth: -1, predicted: -1, outcome: "all", sort: "confidence-desc", withMaps: false};
  let shown = [], rendered = 0, focused = -1, detailAt = -1;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  const className = k => (k >= 0 && k < D.classes.length ? D.classes[k] : "class " + k);
  const confidence = i => (D.confidence[i] === null ? "-" : D.confidence[i].toFixed(2));
  const mapOf = (m, i) => (mapIndex[m] ? (mapIndex[m].has(i) ? mapIndex[m].get(i) : -1) : i);
  const hasMap = i => D.methods.some((m, k) => mapOf(k, i) >= 0);

  // Lazy thumbnails: a tile gets its sheet as background once it comes near the view.
  const thumbs = new IntersectionObserver(entries => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      const node = entry.target;
      node.style.backgroundImage = 'url("' + new URL(node.dataset.sheet, base).href + '")';
      thumbs.unobserve(node);
    }
  }, {rootMargin: "400px"});

  // A tile of a sheet: a box whose background is thumbnail k of ``sheets`` (set now, or on sight when lazy).
  function tile(sheets, k, size, lazy, cls) {
    const box = el("div", cls);
    const [tw, th] = D.tile;
    const scale = size / Math.max(tw, th);
    box.style.width = tw * scale + "px";
    box.style.height = th * scale + "px";
    const sheet = Math.floor(k / D.perSheet), at = k % D.perSheet;
    box.dataset.sheet = sheets[sheet];
    box.style.backgroundSize = D.columns * tw * scale + "px auto";
    box.style.backgroundPosition = -(at % D.columns) * tw * scale + "px " +
      -Math.floor(at / D.columns) * th * scale + "px";
    if (lazy) thumbs.observe(box);
    else box.style.backgroundImage = 'url("' + new URL(box.dataset.sheet, base).href + '")';
    return box;
  }

  // Image i, and with a method's sheets its map k laid half transparent over it ("no map": none for image i).
  function thumb(i, method, size, lazy) {
    const figure = el("figure", "xb-thumb");
    const k = method ? mapOf(D.methods.indexOf(method), i) : i;
    let box;
    if (k < 0) {
      box = el("div", "xb-tile xb-none", "no map");
      box.style.width = box.style.height = size + "px";
    } else {
      box = tile(D.originals, i, size, lazy, "xb-tile");
      if (method) box.append(tile(method.sheets, k, size, lazy, "xb-layer"));
    }
    figure.append(box, el("figcaption", "", method ? method.name : "image"));
    return figure;
  }

  function thumbRow(i, size, lazy) {
    const row = el("div", "xb-thumbs");
    row.append(thumb(i, null, size, lazy));
    D.methods.forEach(m => row.append(thumb(i, m, size, lazy)));
    return row;
  }

  function meta(i) {
    const box = el("div", "xb-meta");
    box.append(el("div", "xb-name", D.names[i]));
    const truth = labelled ? "true " + className(D.true[i]) + ", " : "";
    box.append(el("div", "", truth + "predicted " + className(D.predicted[i]) + " (" + confidence(i) + ")"));
    return box;
  }

  // --- filtering and the list -----------------------------------------------------------------------------
  function matches(i) {
    if (state.truth >= 0 && D.true[i] !== state.truth) return false;
    if (state.predicted >= 0 && D.predicted[i] !== state.predicted) return false;
    if (labelled && state.outcome !== "all" && (D.true[i] === D.predicted[i]) !== (state.outcome === "correct")) {
      return false;
    }
    return !state.withMaps || hasMap(i);
  }

  function update() {
    shown = [];
    for (let i = 0; i < N; i++) if (matches(i)) shown.push(i);
    const c = i => (D.confidence[i] === null ? -1 : D.confidence[i]);
    if (state.sort === "confidence-desc") shown.sort((a, b) => c(b) - c(a) || a - b);
    else if (state.sort === "confidence-asc") shown.sort((a, b) => c(a) - c(b) || a - b);
    list.replaceChildren();
    rendered = 0;
    focused = -1;
    renderMore();
    syncControls();
    const parts = [];
    if (state.truth >= 0) parts.push("true " + className(state.truth));
    if (state.predicted >= 0) parts.push("predicted " + className(state.predicted));
    if (state.outcome !== "all") parts.push(state.outcome);
    if (state.withMaps) parts.push("with maps");
    status.textContent = shown.length + " of " + N + " images" + (parts.length ? ": " + parts.join(", ") : "");
    for (const cell of matrix.querySelectorAll("[data-t],[data-p]")) {
      const t = cell.dataset.t === undefined ? -1 : +cell.dataset.t;
      const p = cell.dataset.p === undefined ? -1 : +cell.dataset.p;
      cell.classList.toggle("xb-selected", t === state.truth && p === state.predicted);
    }
  }

  function renderMore() {
    const stop = Math.min(shown.length, rendered + PAGE);
    const items = [];
    for (let k = rendered; k < stop; k++) {
      const i = shown[k];
      const item = el("li", "xb-item " + (labelled ? (D.true[i] === D.predicted[i] ? "xb-correct" : "xb-wrong") : ""));
      item.tabIndex = -1;
      item.dataset.row = i;
      item.dataset.at = k;
      item.append(thumbRow(i, SMALL, true), meta(i));
      item.addEventListener("click", () => openDetail(+item.dataset.at));
      items.push(item);
    }
    list.append(...items);
    rendered = stop;
  }

  function focusItem(k) {
    if (k < 0 || k >= shown.length) return;
    while (k >= rendered) renderMore();
    const items = list.children;
    if (focused >= 0 && items[focused]) items[focused].tabIndex = -1;
    focused = k;
    items[k].tabIndex = 0;
    items[k].focus();
  }

  // --- the detail view ------------------------------------------------------------------------------------
  function openDetail(k) {
    if (k < 0 || k >= shown.length) return;
    detailAt = k;
    const i = shown[k];
    detailBody.replaceChildren(thumbRow(i, LARGE, false), meta(i),
      el("p", "xb-hint", "Left/Right: previous/next image; Escape: close"));
    detail.hidden = false;
    detail.focus();
  }

  function closeDetail() {
    detail.hidden = true;
    const k = detailAt;
    detailAt = -1;
    focusItem(k);
  }

  // --- the matrix and the controls ------------------------------------------------------------------------
  function matrixTable() {
    const K = D.classes.length;
    const table = el("table", "xb-matrix");
    if (K > MATRIX_MAX) {  // a 1,000-class matrix would be a million buttons: the filters do the same job
      table.append(el("caption", "", K + " classes: too many for a matrix here; pick classes with the filters"));
      return table;
    }
    const counts = [];
    if (labelled) {
      table.append(el("caption", "", "Confusion: rows true class, columns predicted class; click a cell"));
      for (let t = 0; t < K; t++) counts.push(new Array(K).fill(0));
      for (let i = 0; i < N; i++) if (D.true[i] >= 0 && D.true[i] < K && D.predicted[i] < K) counts[D.true[i]][D.predicted[i]]++;
    } else {
      table.append(el("caption", "", "Predicted class (the data has no labels); click a cell"));
      counts.push(new Array(K).fill(0));
      for (let i = 0; i < N; i++) if (D.predicted[i] < K) counts[0][D.predicted[i]]++;
    }
    const head = el("tr");
    head.append(el("th", "", labelled ? "true \\ predicted" : ""));
    for (let p = 0; p < K; p++) head.append(labelled ? headerCell(className(p), -1, p, 0, p + 1) : el("th", "", className(p)));
    table.append(head);
    counts.forEach((row, t) => {
      const tr = el("tr");
      tr.append(labelled ? headerCell(className(t), t, -1, t + 1, 0) : el("th", "", "images"));
      const total = row.reduce((a, b) => a + b, 0) || 1;
      row.forEach((n, p) => {
        const td = el("td");
        const button = cellButton(String(n), labelled ? t : -1, p, t + 1, p + 1);
        button.style.setProperty("--share", (n / total).toFixed(3));
        if (labelled && t === p) button.classList.add("xb-diagonal");
        td.append(button);
        tr.append(td);
      });
      table.append(tr);
    });
    return table;
  }

  function headerCell(text, t, p, r, c) {
    const cell = el("th");
    cell.append(cellButton(text, t, p, r, c));
    return cell;
  }

  // t, p: the true and predicted class the button selects (-1: any); r, c: its place in the grid, for the keys.
  function cellButton(text, t, p, r, c) {
    const button = el("button", "xb-cell", text);
    button.type = "button";
    button.tabIndex = -1;
    button.dataset.r = r;
    button.dataset.c = c;
    if (t >= 0) button.dataset.t = t;
    if (p >= 0) button.dataset.p = p;
    button.addEventListener("click", () => {
      state.truth = t;
      state.predicted = p;
      update();
    });
    return button;
  }

  function select(label, options, onChange) {
    const wrap = el("label", "xb-control", label + " ");
    const box = el("select");
    for (const [value, text] of options) {
      const option = el("option", "", text);
      option.value = value;
      box.append(option);
    }
    box.addEventListener("change", () => onChange(box.value));
    wrap.append(box);
    return [wrap, box];
  }

  function syncControls() {
    trueBox.value = String(state.truth);
    predictedBox.value = String(state.predicted);
    outcomeBox.value = state.outcome;
    sortBox.value = state.sort;
    withMapsBox.checked = state.withMaps;
  }

  // Arrow keys move between the matrix's buttons as on a grid; Enter (a button's own key) selects.
  function matrixKeys(event) {
    const from = document.activeElement;
    const step = {ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0]}[event.key];
    if (!step || !from || from.dataset.r === undefined) return;
    event.preventDefault();
    let r = +from.dataset.r, c = +from.dataset.c, next = null;
    for (let tries = 0; tries < 2 && !next; tries++) {  // the corner holds no button: jump over it
      r += step[0];
      c += step[1];
      next = matrix.querySelector('button[data-r="' + r + '"][data-c="' + c + '"]');
    }
    if (!next) return;
    from.tabIndex = -1;
    next.tabIndex = 0;
    next.focus();
  }

  function listKeys(event) {
    if (event.target.parentElement !== list) return;
    const k = +event.target.dataset.at;
    const step = {ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1}[event.key];
    if (step !== undefined) {
      event.preventDefault();
      focusItem(k + step);
    } else if (event.key === "Enter") {
      event.preventDefault();
      openDetail(k);
    }
  }

  function detailKeys(event) {
    if (event.key === "Escape") closeDetail();
    else if (event.key === "ArrowRight" || event.key === "ArrowDown") openDetail(Math.min(shown.length - 1, detailAt + 1));
    else if (event.key === "ArrowLeft" || event.key === "ArrowUp") openDetail(Math.max(0, detailAt - 1));
    else return;
    event.preventDefault();
    event.stopPropagation();
  }

  // --- building the page ----------------------------------------------------------------------------------
  const classOptions = [["-1", "any"], ...D.classes.map((name, k) => [String(k), name])];
  const [trueWrap, trueBox] = select("true class", classOptions, v => { state.truth = +v; update(); });
  const [predictedWrap, predictedBox] = select("predicted class", classOptions, v => { state.predicted = +v; update(); });
  const [outcomeWrap, outcomeBox] = select("outcome", [["all", "all"], ["correct", "correct"], ["wrong", "wrong"]],
    v => { state.outcome = v; update(); });
  const [sortWrap, sortBox] = select("sort", [["confidence-desc", "confidence, highest first"],
    ["confidence-asc", "confidence, lowest first"], ["row", "data order"]], v => { state.sort = v; update(); });
  const withMapsWrap = el("label", "xb-control");
  const withMapsBox = el("input");
  withMapsBox.type = "checkbox";
  withMapsBox.addEventListener("change", () => { state.withMaps = withMapsBox.checked; update(); });
  withMapsWrap.append(withMapsBox, document.createTextNode(" only images with maps"));
  const reset = el("button", "xb-reset", "show all");
  reset.type = "button";
  reset.addEventListener("click", () => { Object.assign(state, {truth: -1, predicted: -1, outcome: "all"}); update(); });
  if (!labelled) { trueWrap.hidden = true; outcomeWrap.hidden = true; }
  if (!D.methods.some(m => m.rows)) withMapsWrap.hidden = true;

  const matrix = matrixTable();
  const firstCell = matrix.querySelector("td button");
  if (firstCell) firstCell.tabIndex = 0;
  matrix.addEventListener("keydown", matrixKeys);
  const controls = el("div", "xb-controls");
  controls.append(trueWrap, predictedWrap, outcomeWrap, sortWrap, withMapsWrap, reset);
  const legend = el("p", "xb-hint", D.methods.length
    ? "Each image, then every method's map over it (jet colours: red = strongest; signed maps by magnitude). " +
      "Arrow keys move in the matrix and the list, Enter opens, Escape shows all."
    : "No attribution method ran: the images only. Arrow keys move, Enter opens, Escape shows all.");
  const status = el("p", "xb-status");
  status.setAttribute("aria-live", "polite");
  const list = el("ol", "xb-list");
  list.addEventListener("keydown", listKeys);
  const sentinel = el("div", "xb-sentinel");
  new IntersectionObserver(entries => {
    if (entries.some(e => e.isIntersecting) && rendered < shown.length) renderMore();
  }, {rootMargin: "800px"}).observe(sentinel);
  const detail = el("div", "xb-detail");
  detail.hidden = true;
  detail.tabIndex = -1;
  detail.setAttribute("role", "dialog");
  detail.setAttribute("aria-label", "image and its maps");
  const detailBody = el("div", "xb-detail-body");
  const close = el("button", "xb-close", "close");
  close.type = "button";
  close.addEventListener("click", closeDetail);
  detail.append(close, detailBody);
  detail.addEventListener("keydown", detailKeys);
  detail.addEventListener("click", event => { if (event.target === detail) closeDetail(); });
  root.addEventListener("keydown", event => {
    if (event.key === "Escape" && detail.hidden) {
      Object.assign(state, {truth: -1, predicted: -1, outcome: "all"});
      update();
    }
  });
  root.replaceChildren(el("div", "xb-top"), legend, status, list, sentinel, detail);
  root.firstChild.append(matrix, controls);
  update();
  root.dataset.ready = "true";
  if (window.performance && performance.mark) performance.mark("xai-browser-ready");
})();
