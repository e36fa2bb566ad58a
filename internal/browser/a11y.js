// Accessibility measurements run in the page under test (see a11y.go): WCAG 2 contrast from computed
// styles, and a layout that fits the viewport without breaking words.

function saasParse(s) {
  const m = /rgba?\(([^)]*)\)/.exec(s || "");
  if (!m) return null;
  const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
  return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
}

// saasOver composites a colour with alpha over an opaque one.
function saasOver(top, bottom) {
  const a = top.a;
  return { r: top.r * a + bottom.r * (1 - a), g: top.g * a + bottom.g * (1 - a), b: top.b * a + bottom.b * (1 - a), a: 1 };
}

// saasBackground is the opaque colour el is drawn on: its own and its ancestors' backgrounds, blended.
function saasBackground(el) {
  const layers = [];
  for (let e = el; e; e = e.parentElement) {
    const c = saasParse(getComputedStyle(e).backgroundColor);
    if (c && c.a > 0) {
      layers.push(c);
      if (c.a >= 1) break;
    }
  }
  const dark = matchMedia("(prefers-color-scheme: dark)").matches;
  let bg = dark ? { r: 18, g: 18, b: 18, a: 1 } : { r: 255, g: 255, b: 255, a: 1 };
  for (let i = layers.length - 1; i >= 0; i--) bg = saasOver(layers[i], bg);
  return bg;
}

function saasLuminance(c) {
  const f = (v) => {
    v /= 255;
    return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
  };
  return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
}

function saasRatio(a, b) {
  const l1 = saasLuminance(a), l2 = saasLuminance(b);
  return (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
}

function saasVisible(el) {
  const s = getComputedStyle(el);
  if (s.visibility !== "visible" || s.display === "none" || parseFloat(s.opacity) === 0) return false;
  const r = el.getBoundingClientRect();
  return r.width > 0 && r.height > 0;
}

function saasDescribe(el) {
  let d = el.tagName.toLowerCase();
  if (el.id) d += "#" + el.id;
  if (typeof el.className === "string" && el.className.trim()) d += "." + el.className.trim().split(/\s+/).join(".");
  return d;
}

function saasCSS(c) {
  return "rgb(" + Math.round(c.r) + ", " + Math.round(c.g) + ", " + Math.round(c.b) + ")";
}

function saasContrast() {
  const problems = [];
  let checked = 0;
  for (const el of document.body.querySelectorAll("*")) {
    if (!saasVisible(el) || el.closest("script, style, noscript, [aria-hidden=true]")) continue;
    const s = getComputedStyle(el);
    const own = Array.from(el.childNodes).filter((n) => n.nodeType === Node.TEXT_NODE).map((n) => n.textContent).join("").trim();
    const field = el.matches("input:not([type=hidden]):not([type=submit]):not([type=button]), select, textarea, progress");
    if (!own && !field) continue;
    const bg = saasBackground(el);
    if (own) {
      const fg = saasOver(saasParse(s.color), bg);
      const size = parseFloat(s.fontSize);
      const large = size >= 24 || (parseInt(s.fontWeight, 10) >= 700 && size >= 18.66);
      const need = large ? 3 : 4.5;
      const r = saasRatio(fg, bg);
      checked++;
      if (r < need - 0.005) problems.push({ what: saasDescribe(el), text: own.slice(0, 60), fg: s.color, bg: saasCSS(bg), ratio: r, required: need });
    }
    if (field) {
      // A field without text of its own is found by its boundary (WCAG 1.4.11): its border, or its fill,
      // must stand out 3:1 from what is around it.
      const around = el.parentElement ? saasBackground(el.parentElement) : bg;
      const fill = saasOver(saasParse(s.backgroundColor) || { r: 0, g: 0, b: 0, a: 0 }, around);
      let best = saasRatio(fill, around);
      if (parseFloat(s.borderTopWidth) > 0 && s.borderTopStyle !== "none") best = Math.max(best, saasRatio(saasOver(saasParse(s.borderTopColor), around), around));
      checked++;
      if (best < 2.995) problems.push({ what: saasDescribe(el), text: "(boundary)", fg: s.borderTopColor, bg: saasCSS(around), ratio: best, required: 3 });
    }
  }
  return { checked: checked, problems: problems };
}

function saasLayout() {
  const broken = [], overflowing = [], unlabelled = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || !saasVisible(el) || el.closest("script, style, noscript")) continue;
    // A word is what lies between spaces, hyphens and slashes, where lines may break.
    const re = /[^\s\-\/]{2,}/g;
    let m;
    while ((m = re.exec(n.textContent))) {
      const range = document.createRange();
      range.setStart(n, m.index);
      range.setEnd(n, m.index + m[0].length);
      const tops = new Set(Array.from(range.getClientRects()).filter((r) => r.width > 0).map((r) => Math.round(r.top)));
      if (tops.size > 1) broken.push(m[0]);
    }
  }
  for (const el of document.body.querySelectorAll("*")) {
    if (!saasVisible(el)) continue;
    const s = getComputedStyle(el);
    if (el.clientWidth > 0 && s.overflowX === "visible" && el.scrollWidth > el.clientWidth + 1) {
      overflowing.push(saasDescribe(el) + " (" + el.scrollWidth + " px in " + el.clientWidth + ")");
    }
  }
  for (const el of document.querySelectorAll("button, a[href], input:not([type=hidden]), select, textarea, progress")) {
    if (!saasVisible(el)) continue;
    let name = el.getAttribute("aria-label") || "";
    const by = el.getAttribute("aria-labelledby");
    if (!name && by) name = by.split(/\s+/).map((id) => (document.getElementById(id) || {}).textContent || "").join(" ");
    if (!name && el.labels && el.labels.length) name = el.labels[0].textContent;
    if (!name && !el.matches("input, select, textarea, progress")) name = el.textContent || el.getAttribute("title") || "";
    if (!name.trim()) unlabelled.push(saasDescribe(el));
  }
  return { scrollWidth: document.documentElement.scrollWidth, width: document.documentElement.clientWidth, broken: broken, overflowing: overflowing, unlabelled: unlabelled };
}
