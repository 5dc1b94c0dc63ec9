// @ts-check
/**
 * The live graph of a kailash_nb workflow (anywidget front end of `GraphWidget`).
 *
 * Draws the layout Python computed (traits `nodes`, `edges`, `size`) as SVG with the
 * same markup and colours as `kailash_nb/notebook/svg.py`: every node is a
 * `<g class="kn-node" data-node="<id>" data-state="<state>">`. State changes recolour
 * nodes in place; nothing is re-laid out in the browser. A click on a node sends
 * `{type: "select", node: id}` and Python answers with the `details` trait, shown in a
 * `<div class="kn-details" data-node="<id>">` panel beside the graph, or below it when
 * the two do not fit side by side: the panel never covers or squeezes the graph. A
 * failed node's `traceback` is shown as IPython shows an error, its last line
 * emphasised. A legend (`<ul class="kn-legend">`, one `<li data-state="<state>">` per
 * state, in `STATE_COLORS` order) explains the colours. The last run's status (trait
 * `run_status`: running, completed, failed, timeout, cancelled) is in the title and in
 * the root's `data-run-status`. The steps a running node reports (trait `steps`:
 * `{[id]: {latest, log}}`) show live: the latest one under the node
 * (`<text class="kn-node-step">`, e.g. "tool_call: search") and the node's step log in
 * its details panel (`<ol class="kn-details-steps">`); a new run empties them. Node
 * data only ever reaches the page as text (`textContent`, attributes), never as
 * markup. Plain ESM, no imports.
 */

/** @typedef {{id: string, type: string, state: string, x: number, y: number}} GraphNode */
/** @typedef {{source: string, target: string, label: string, back: boolean}} GraphEdge */
/**
 * @typedef {object} Details  The selected node, or `{}` when none is selected.
 * @property {string} [id]
 * @property {string} [type]
 * @property {string} [state]
 * @property {Record<string, string | null>} [parameters]
 * @property {number | null} [duration]  seconds
 * @property {string | null} [error]
 * @property {string | null} [traceback]  the failure's traceback (user frames only)
 * @property {string | null} [output_preview]
 * @property {string | null} [cell]
 */
/** @typedef {{latest: string, log: string[]}} NodeSteps  A node's steps in this run. */
/**
 * @typedef {object} Model  The part of anywidget's model this view uses.
 * @property {(name: string) => any} get
 * @property {(event: string, callback: () => void) => void} on
 * @property {(event: string, callback: () => void) => void} off
 * @property {(content: object) => void} send
 */
/**
 * @typedef {object} DrawnNode
 * @property {SVGGElement} g
 * @property {SVGRectElement} rect
 * @property {SVGTitleElement} title
 * @property {SVGTextElement} idText
 * @property {SVGTextElement} typeText
 * @property {SVGTextElement} stepText
 * @property {SVGTitleElement} stepTitle
 * @property {GraphNode} node
 */

const SVG_NS = "http://www.w3.org/2000/svg";
// Box size and loop depth: layout.py's NODE_WIDTH / NODE_HEIGHT and svg.py's _LOOP_DEPTH.
const NODE_WIDTH = 160;
const NODE_HEIGHT = 48;
const LOOP_DEPTH = 56;
const MAX_LABEL = 22;
const MAX_EDGE_LABEL = 18;
// The latest step under a node: as wide as the node's box.
const MAX_STEP_LABEL = 28;

/** Fill and stroke per state: the same table as svg.py's STATE_COLORS. */
const STATE_COLORS = {
  idle: ["#f1f5f9", "#94a3b8"],
  stale: ["#fef3c7", "#d97706"],
  queued: ["#e0e7ff", "#6366f1"],
  running: ["#bfdbfe", "#2563eb"],
  completed: ["#bbf7d0", "#16a34a"],
  cached: ["#ccfbf1", "#0d9488"],
  failed: ["#fecaca", "#dc2626"],
  skipped: ["#e5e7eb", "#9ca3af"],
};
const TEXT_COLOR = "#0f172a";
const EDGE_COLOR = "#64748b";
const BACKGROUND_COLOR = "#ffffff";

// Escape sequences of coloured terminal text, left out of a traceback shown as text.
const ANSI_ESCAPE = /\u001b\[[0-9;]*[A-Za-z]/g;

// The graph keeps its natural width (scrolling only when wider than the output area); the
// details panel takes the room left beside it, and wraps below the graph when that room is
// narrower than the panel's minimum width. So the panel never covers or narrows the graph.
const CSS = `
.kn-widget { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 13px;
  color: var(--jp-ui-font-color1, #0f172a); display: flex; flex-wrap: wrap; gap: 12px;
  align-items: flex-start; }
.kn-main { min-width: 0; max-width: 100%; flex: 0 1 auto; }
.kn-title { font-weight: 600; margin: 0 0 4px; }
.kn-legend { display: flex; flex-wrap: wrap; gap: 2px 12px; list-style: none; margin: 0 0 6px;
  padding: 0; font-size: 11px; color: var(--jp-ui-font-color2, #475569);
  width: 0; min-width: 100%; }
.kn-legend[hidden] { display: none; }
.kn-legend-item { display: flex; align-items: center; gap: 4px; white-space: nowrap; }
.kn-legend-swatch { width: 12px; height: 12px; border: 1.5px solid; border-radius: 3px;
  box-sizing: border-box; }
.kn-canvas { overflow: auto; max-height: 640px; }
.kn-empty { color: var(--jp-ui-font-color2, #64748b); font-style: italic; padding: 8px 0; }
.kn-node { cursor: pointer; }
.kn-node:focus { outline: none; }
.kn-node:focus rect, .kn-node.kn-selected rect { stroke-width: 3; }
.kn-details { flex: 1 1 280px; min-width: 240px; max-width: 560px; box-sizing: border-box;
  border: 1px solid var(--jp-border-color1, #cbd5e1); border-radius: 8px; padding: 8px 10px;
  background: var(--jp-layout-color1, #fff); }
.kn-details[hidden] { display: none; }
.kn-details-header { display: flex; align-items: center; gap: 6px; margin-bottom: 6px; }
.kn-details-id { font-weight: 600; overflow-wrap: anywhere; flex: 1 1 auto; }
.kn-details-state { font-size: 11px; padding: 1px 6px; border-radius: 8px; border: 1px solid;
  color: ${TEXT_COLOR}; }
.kn-details-close { border: none; background: none; cursor: pointer; font-size: 16px;
  color: inherit; line-height: 1; }
.kn-details dl { display: grid; grid-template-columns: auto 1fr; gap: 2px 8px; margin: 0 0 6px; }
.kn-details dt { color: var(--jp-ui-font-color2, #64748b); }
.kn-details dd { margin: 0; overflow-wrap: anywhere; }
.kn-details h4 { font-size: 12px; margin: 8px 0 2px; color: var(--jp-ui-font-color2, #64748b); }
.kn-details table { border-collapse: collapse; width: 100%; font-size: 12px; }
.kn-details th { text-align: left; font-weight: 500; padding: 1px 8px 1px 0; vertical-align: top; }
.kn-details td { overflow-wrap: anywhere; font-family: var(--jp-code-font-family, monospace); }
.kn-details pre { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; max-height: 200px;
  overflow: auto; font-size: 12px; }
.kn-details-error { color: #b91c1c; }
.kn-details pre.kn-details-traceback { max-height: 320px; font-family: var(--jp-code-font-family,
  SFMono-Regular, Menlo, Consolas, monospace); background: var(--jp-rendermime-error-background,
  #fdd); padding: 4px 6px; border-radius: 4px; color: var(--jp-content-font-color1, #0f172a); }
.kn-tb-frame { color: #15803d; }
.kn-tb-line { font-weight: 700; }
.kn-tb-exception { color: var(--jp-error-color1, #b91c1c); font-weight: 700; }
.kn-details ol.kn-details-steps { margin: 0; padding-left: 20px; font-size: 12px;
  max-height: 200px; overflow: auto; }
.kn-details-steps li { overflow-wrap: anywhere; }
`;

let viewCount = 0;

/**
 * An SVG element with attributes.
 * @template {keyof SVGElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, string | number>} [attributes]
 * @returns {SVGElementTagNameMap[K]}
 */
function svgElement(tag, attributes = {}) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) {
    element.setAttribute(name, String(value));
  }
  return element;
}

/**
 * An HTML element with a class and text.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string} [className]
 * @param {string} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
function htmlElement(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

/**
 * `text` cut to `limit` characters, ending in an ellipsis when cut (svg.py's `shorten`).
 * @param {string} text
 * @param {number} [limit]
 */
function shorten(text, limit = MAX_LABEL) {
  return text.length <= limit ? text : `${text.slice(0, limit - 1)}…`;
}

/**
 * Fill and stroke of a state (unknown states look idle).
 * @param {string} state
 * @returns {string[]}
 */
function colors(state) {
  return Object.prototype.hasOwnProperty.call(STATE_COLORS, state)
    ? STATE_COLORS[/** @type {keyof typeof STATE_COLORS} */ (state)]
    : STATE_COLORS.idle;
}

/**
 * Path from the source's right side to the target's left side, and the label's place
 * (svg.py's `edge_path`).
 * @param {GraphNode} source
 * @param {GraphNode} target
 * @returns {{d: string, labelX: number, labelY: number}}
 */
function edgePath(source, target) {
  const x1 = source.x + NODE_WIDTH;
  const y1 = source.y + NODE_HEIGHT / 2;
  const x2 = target.x;
  const y2 = target.y + NODE_HEIGHT / 2;
  if (x2 > x1) {
    const bend = Math.max(40, Math.floor((x2 - x1) / 2));
    return {
      d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`,
      labelX: (x1 + x2) / 2,
      labelY: (y1 + y2) / 2 - 6,
    };
  }
  return {
    d: `M${x1},${y1} C${x1 + 60},${y1 + LOOP_DEPTH} ${x2 - 60},${y2 + LOOP_DEPTH} ${x2},${y2}`,
    labelX: (x1 + x2) / 2,
    labelY: (y1 + y2) / 2 + LOOP_DEPTH * 0.75 + 12,
  };
}

/**
 * Seconds as people read them.
 * @param {number} seconds
 */
function formatDuration(seconds) {
  return seconds < 1 ? `${(seconds * 1000).toFixed(1)} ms` : `${seconds.toFixed(2)} s`;
}

/**
 * The legend of the node colours: one item per state, in `STATE_COLORS` order.
 * @returns {HTMLUListElement}
 */
function legend() {
  const list = htmlElement("ul", "kn-legend");
  list.setAttribute("aria-label", "Node states");
  for (const [state, [fill, stroke]] of Object.entries(STATE_COLORS)) {
    const item = htmlElement("li", "kn-legend-item");
    item.setAttribute("data-state", state);
    const swatch = htmlElement("span", "kn-legend-swatch");
    swatch.style.background = fill;
    swatch.style.borderColor = stroke;
    item.append(swatch, document.createTextNode(state));
    list.append(item);
  }
  return list;
}

/**
 * A traceback shown as IPython shows an error: monospace, one line per line, frame
 * headers coloured, the failing line of each frame bold (the line after a `File` header,
 * or IPython's `---->` line) and the exception itself (the unindented lines after the last
 * frame) emphasised. Every line is text (`textContent`), never markup.
 * @param {string} traceback
 * @returns {HTMLPreElement}
 */
function tracebackBlock(traceback) {
  const pre = htmlElement("pre", "kn-details-traceback");
  const lines = traceback.replace(ANSI_ESCAPE, "").replace(/\s+$/, "").split("\n");
  // The last line of the last frame: an indented line, or IPython's `---->` marker.
  let lastFrameLine = -1;
  lines.forEach((line, index) => {
    if (/^\s/.test(line) || /^-+>/.test(line)) lastFrameLine = index;
  });
  let afterFrame = false;
  lines.forEach((line, index) => {
    /** @type {string | undefined} */
    let className;
    const isFrame = /^\s*File "/.test(line) || /^Cell In\b/.test(line);
    if (index > lastFrameLine && line.trim() !== "") className = "kn-tb-exception";
    else if (isFrame) className = "kn-tb-frame";
    else if ((afterFrame && line.trim() !== "") || /^\s*-+>/.test(line)) className = "kn-tb-line";
    afterFrame = /^\s*File "/.test(line);
    const text = index < lines.length - 1 ? `${line}\n` : line;
    pre.append(className ? htmlElement("span", className, text) : document.createTextNode(text));
  });
  return pre;
}

/**
 * Render the graph into `el` and keep it in sync with `model`.
 * @param {{model: Model, el: HTMLElement}} context
 * @returns {() => void} cleanup
 */
function render({ model, el }) {
  const markerId = `kn-arrow-${++viewCount}`;
  const root = htmlElement("div", "kn-widget");
  const style = htmlElement("style", undefined, CSS);
  const main = htmlElement("div", "kn-main");
  const title = htmlElement("div", "kn-title");
  const canvas = htmlElement("div", "kn-canvas");
  const empty = htmlElement("div", "kn-empty", "No nodes yet.");
  const svg = svgElement("svg", {
    class: "kn-graph",
    "font-family": "system-ui, -apple-system, Segoe UI, sans-serif",
    "font-size": 12,
  });
  const marker = svgElement("marker", {
    id: markerId,
    viewBox: "0 0 10 10",
    refX: 10,
    refY: 5,
    markerWidth: 8,
    markerHeight: 8,
    orient: "auto-start-reverse",
  });
  marker.append(svgElement("path", { d: "M0,0 L10,5 L0,10 z", fill: EDGE_COLOR }));
  const defs = svgElement("defs");
  defs.append(marker);
  const background = svgElement("rect", { class: "kn-background", fill: BACKGROUND_COLOR });
  const edgeLayer = svgElement("g", { class: "kn-edges" });
  const nodeLayer = svgElement("g", { class: "kn-nodes" });
  svg.append(defs, background, edgeLayer, nodeLayer);
  canvas.append(svg);
  const stateLegend = legend();
  main.append(title, stateLegend, empty, canvas);
  const panel = htmlElement("div", "kn-details");
  panel.hidden = true;
  root.append(style, main, panel);
  el.replaceChildren(root);

  /** @type {Map<string, DrawnNode>} */
  const drawn = new Map();
  let edgeGeometry = "";

  /** @param {string | null} nodeId */
  const select = (nodeId) => model.send({ type: "select", node: nodeId });

  /** @param {GraphNode} node */
  function createNode(node) {
    const g = svgElement("g", { class: "kn-node", tabindex: 0, role: "button" });
    const rect = svgElement("rect", {
      width: NODE_WIDTH,
      height: NODE_HEIGHT,
      rx: 8,
      ry: 8,
      "stroke-width": 1.5,
    });
    const nodeTitle = svgElement("title");
    const center = NODE_WIDTH / 2;
    const idText = svgElement("text", {
      class: "kn-node-id",
      x: center,
      y: 20,
      "text-anchor": "middle",
      "font-weight": 600,
      fill: TEXT_COLOR,
    });
    const typeText = svgElement("text", {
      class: "kn-node-type",
      x: center,
      y: 36,
      "text-anchor": "middle",
      "font-size": 11,
      fill: TEXT_COLOR,
      "fill-opacity": 0.7,
    });
    // Under the box, in the room between two rows (layout.py's ROW_SPACING).
    const stepText = svgElement("text", {
      class: "kn-node-step",
      x: center,
      y: NODE_HEIGHT + 13,
      "text-anchor": "middle",
      "font-size": 10,
      "font-style": "italic",
      fill: EDGE_COLOR,
    });
    const stepTitle = svgElement("title");
    stepText.append(stepTitle);
    g.append(nodeTitle, rect, idText, typeText, stepText);
    g.addEventListener("click", () => select(node.id));
    g.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        select(node.id);
      }
    });
    nodeLayer.append(g);
    /** @type {DrawnNode} */
    const entry = { g, rect, title: nodeTitle, idText, typeText, stepText, stepTitle, node };
    drawn.set(node.id, entry);
    return entry;
  }

  /**
   * Bring one drawn node up to date, touching only what changed.
   * @param {DrawnNode} entry
   * @param {GraphNode} node
   * @param {boolean} fresh
   */
  function updateNode(entry, node, fresh) {
    const old = entry.node;
    if (fresh || old.x !== node.x || old.y !== node.y) {
      entry.g.setAttribute("transform", `translate(${node.x},${node.y})`);
    }
    if (fresh || old.state !== node.state) {
      const [fill, stroke] = colors(node.state);
      entry.g.setAttribute("data-state", node.state);
      entry.rect.setAttribute("fill", fill);
      entry.rect.setAttribute("stroke", stroke);
    }
    if (fresh || old.id !== node.id || old.type !== node.type || old.state !== node.state) {
      entry.g.setAttribute("data-node", node.id);
      entry.g.setAttribute("aria-label", `${node.id} (${node.type}): ${node.state}`);
      entry.title.textContent = `${node.id} (${node.type}): ${node.state}`;
      entry.idText.textContent = shorten(node.id);
      entry.typeText.textContent = shorten(node.type);
    }
    entry.node = node;
  }

  function drawNodes() {
    /** @type {GraphNode[]} */
    const nodes = model.get("nodes") ?? [];
    const seen = new Set();
    for (const node of nodes) {
      seen.add(node.id);
      const existing = drawn.get(node.id);
      if (existing) updateNode(existing, node, false);
      else updateNode(createNode(node), node, true);
    }
    for (const [nodeId, entry] of drawn) {
      if (!seen.has(nodeId)) {
        entry.g.remove();
        drawn.delete(nodeId);
      }
    }
    // Keep document order equal to the model's (svg.py draws in that order); moving a
    // node only when needed keeps keyboard focus on it.
    const children = nodeLayer.children;
    const inOrder = nodes.every((node, index) => children[index] === drawn.get(node.id)?.g);
    if (!inOrder) {
      for (const node of nodes) {
        const entry = drawn.get(node.id);
        if (entry) nodeLayer.append(entry.g);
      }
    }
    empty.hidden = nodes.length > 0;
    canvas.hidden = nodes.length === 0;
    stateLegend.hidden = nodes.length === 0;
    drawEdges(nodes);
    drawSteps();
    markSelected();
  }

  /** @returns {Record<string, NodeSteps>} */
  function nodeSteps() {
    return model.get("steps") ?? {};
  }

  /** The latest step of each node under it (nothing for a node without steps). */
  function drawSteps() {
    const steps = nodeSteps();
    for (const [nodeId, entry] of drawn) {
      const latest = steps[nodeId]?.latest ?? "";
      const label = shorten(latest, MAX_STEP_LABEL);
      if (entry.stepText.getAttribute("data-step") === latest) continue;
      entry.stepText.setAttribute("data-step", latest);
      entry.stepTitle.textContent = latest;
      entry.stepText.replaceChildren(entry.stepTitle, document.createTextNode(label));
      entry.stepText.setAttribute("visibility", latest ? "visible" : "hidden");
    }
  }

  /** @param {GraphNode[]} nodes */
  function drawEdges(nodes) {
    /** @type {GraphEdge[]} */
    const edges = model.get("edges") ?? [];
    const withLabels = Boolean(model.get("edge_labels"));
    const geometry = JSON.stringify([
      edges,
      withLabels,
      nodes.map((node) => [node.id, node.x, node.y]),
    ]);
    if (geometry === edgeGeometry) return;
    edgeGeometry = geometry;
    const byId = new Map(nodes.map((node) => [node.id, node]));
    /** @type {SVGGElement[]} */
    const groups = [];
    for (const edge of edges) {
      const source = byId.get(edge.source);
      const target = byId.get(edge.target);
      if (!source || !target) continue;
      const { d, labelX, labelY } = edgePath(source, target);
      const g = svgElement("g", {
        class: "kn-edge",
        "data-source": edge.source,
        "data-target": edge.target,
        "data-back": String(Boolean(edge.back)),
      });
      const edgeTitle = svgElement("title");
      edgeTitle.textContent = edge.label;
      /** @type {Record<string, string | number>} */
      const pathAttributes = {
        d,
        fill: "none",
        stroke: EDGE_COLOR,
        "stroke-width": 1.5,
        "marker-end": `url(#${markerId})`,
      };
      if (edge.back) pathAttributes["stroke-dasharray"] = "5 4";
      g.append(edgeTitle, svgElement("path", pathAttributes));
      if (withLabels && edge.label) {
        const label = svgElement("text", {
          class: "kn-edge-label",
          x: labelX,
          y: labelY,
          "text-anchor": "middle",
          "font-size": 10,
          fill: EDGE_COLOR,
          stroke: BACKGROUND_COLOR,
          "stroke-width": 3,
          "stroke-linejoin": "round",
          "paint-order": "stroke",
        });
        label.textContent = shorten(edge.label, MAX_EDGE_LABEL);
        g.append(label);
      }
      groups.push(g);
    }
    edgeLayer.replaceChildren(...groups);
  }

  function drawSize() {
    /** @type {{width?: number, height?: number}} */
    const size = model.get("size") ?? {};
    const width = size.width ?? 0;
    const height = size.height ?? 0;
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(height));
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    background.setAttribute("width", String(width));
    background.setAttribute("height", String(height));
  }

  function drawTitle() {
    const name = model.get("workflow_name") ?? "";
    /** @type {string} */
    const runStatus = model.get("run_status") ?? "";
    title.textContent = runStatus ? `Workflow ${name}: run ${runStatus}` : `Workflow ${name}`;
    svg.setAttribute("aria-label", `Workflow ${name}`);
    root.setAttribute("data-run-status", runStatus);
  }

  function markSelected() {
    /** @type {Details} */
    const details = model.get("details") ?? {};
    for (const [nodeId, entry] of drawn) {
      entry.g.classList.toggle("kn-selected", nodeId === details.id);
    }
  }

  /**
   * A titled block in the details panel.
   * @param {string} heading
   * @param {HTMLElement} body
   */
  function section(heading, body) {
    panel.append(htmlElement("h4", undefined, heading), body);
  }

  function drawDetails() {
    /** @type {Details} */
    const details = model.get("details") ?? {};
    markSelected();
    if (!details.id) {
      panel.hidden = true;
      panel.removeAttribute("data-node");
      panel.replaceChildren();
      return;
    }
    const state = details.state ?? "idle";
    const [fill, stroke] = colors(state);
    panel.hidden = false;
    panel.setAttribute("data-node", details.id);
    panel.setAttribute("data-state", state);
    panel.replaceChildren();

    const header = htmlElement("div", "kn-details-header");
    const badge = htmlElement("span", "kn-details-state", state);
    badge.style.background = fill;
    badge.style.borderColor = stroke;
    const close = htmlElement("button", "kn-details-close", "×");
    close.type = "button";
    close.title = "Close details";
    close.setAttribute("aria-label", "Close details");
    close.addEventListener("click", () => select(null));
    header.append(htmlElement("span", "kn-details-id", details.id), badge, close);
    panel.append(header);

    const facts = htmlElement("dl");
    /** @type {[string, string, string | null | undefined][]} */
    const rows = [
      ["Type", "kn-details-type", details.type],
      [
        "Duration",
        "kn-details-duration",
        typeof details.duration === "number" ? formatDuration(details.duration) : null,
      ],
      ["Cell", "kn-details-cell", details.cell],
    ];
    for (const [name, className, value] of rows) {
      if (value === null || value === undefined || value === "") continue;
      facts.append(htmlElement("dt", undefined, name), htmlElement("dd", className, value));
    }
    panel.append(facts);

    const parameters = Object.entries(details.parameters ?? {});
    if (parameters.length > 0) {
      const table = htmlElement("table", "kn-details-parameters");
      for (const [name, value] of parameters) {
        const row = htmlElement("tr");
        row.setAttribute("data-parameter", name);
        row.append(htmlElement("th", undefined, name), htmlElement("td", undefined, value ?? ""));
        table.append(row);
      }
      section("Parameters", table);
    }
    const traceback = typeof details.traceback === "string" ? details.traceback : "";
    // The traceback ends with the error; the error alone is shown when there is none
    // (or when it says something the traceback does not).
    if (details.error && !traceback.includes(details.error)) {
      section("Error", htmlElement("pre", "kn-details-error", details.error));
    }
    if (traceback.trim() !== "") section("Traceback", tracebackBlock(traceback));
    if (details.output_preview) {
      section("Output preview", htmlElement("pre", "kn-details-output", details.output_preview));
    }
    const log = nodeSteps()[details.id]?.log ?? [];
    if (log.length > 0) {
      const list = htmlElement("ol", "kn-details-steps");
      for (const step of log) list.append(htmlElement("li", undefined, step));
      section("Steps", list);
    }
  }

  function stepsChanged() {
    drawSteps();
    /** @type {Details} */
    const details = model.get("details") ?? {};
    if (details.id) drawDetails();
  }

  function drawAll() {
    drawTitle();
    drawSize();
    drawNodes();
    drawDetails();
  }

  /** @type {[string, () => void][]} */
  const handlers = [
    ["change:workflow_name", drawTitle],
    ["change:run_status", drawTitle],
    ["change:size", drawSize],
    ["change:nodes", drawNodes],
    ["change:edges", () => drawEdges(model.get("nodes") ?? [])],
    ["change:edge_labels", () => drawEdges(model.get("nodes") ?? [])],
    ["change:details", drawDetails],
    ["change:steps", stepsChanged],
  ];
  for (const [event, handler] of handlers) model.on(event, handler);
  drawAll();

  return () => {
    for (const [event, handler] of handlers) model.off(event, handler);
  };
}

export default { render };
