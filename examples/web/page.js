// The page: loads a graph (./model.onnx, `?model=URL`, or a file the user picks), tags the audio the
// user drops, and shows the top labels and a timeline of the top classes. `window.dymnResult` holds the
// last result for scripts and tests.
import { decodeAudio, readMetadata, tagSamples, topLabels } from "./tagger.js";

const TOP = 10;
const TIMELINE_CLASSES = 5;
const ort = globalThis.ort;
ort.env.wasm.wasmPaths = new URL("node_modules/onnxruntime-web/dist/", document.baseURI).href;
ort.env.wasm.numThreads = 1; // (threads need cross-origin isolation, which a plain static server lacks)

const status = document.getElementById("status");
let model = null;

function show(text, isError = false) {
  status.textContent = text;
  status.classList.toggle("error", isError);
}

async function loadModel(bytes, name) {
  const metadata = readMetadata(bytes);
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  model = { metadata, session };
  document.getElementById("model").textContent = `${name} (${metadata.model}, ${metadata.labels.length} classes)`;
  show("Ready: drop an audio file.");
}

async function tagFile(file) {
  if (!model) return show("No model loaded.", true);
  show(`Tagging ${file.name}…`);
  const started = performance.now();
  let samples;
  try {
    samples = await decodeAudio(await file.arrayBuffer(), model.metadata.sampleRate);
  } catch (error) {
    window.dymnResult = { path: file.name, error: String(error) };
    return show(`${file.name}: cannot be decoded by this browser (${error.message || error})`, true);
  }
  const result = await tagSamples(ort, model.session, model.metadata, samples);
  const top = topLabels(model.metadata, result.scores, TOP);
  window.dymnResult = { path: file.name, ...result, labels: top };
  drawTable(top);
  drawTimeline(result, top.slice(0, TIMELINE_CLASSES));
  const seconds = (performance.now() - started) / 1000;
  show(`${file.name}: ${result.duration.toFixed(1)} s of audio, ${result.windows.length} windows, in ${seconds.toFixed(2)} s.`);
}

function drawTable(top) {
  const table = document.getElementById("top");
  const body = table.querySelector("tbody");
  body.replaceChildren(
    ...top.map(({ label, score }, rank) => {
      const row = document.createElement("tr");
      for (const [text, className] of [[rank + 1, ""], [label, ""], [score.toFixed(3), "score"]]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        cell.className = className;
        row.append(cell);
      }
      return row;
    }),
  );
  table.hidden = false;
}

// One row per class, one column per window; darker is a higher score.
function drawTimeline(result, classes) {
  const canvas = document.getElementById("timeline");
  const labelWidth = 160;
  const rowHeight = 18;
  const cell = Math.max(2, Math.floor((720 - labelWidth) / result.windows.length));
  canvas.width = labelWidth + cell * result.windows.length;
  canvas.height = rowHeight * classes.length;
  const context = canvas.getContext("2d");
  context.font = "12px system-ui";
  classes.forEach(({ label, index }, row) => {
    context.fillStyle = "#000";
    context.fillText(label.slice(0, 24), 2, row * rowHeight + 13);
    result.windows.forEach(({ scores }, column) => {
      context.fillStyle = `rgba(30, 60, 200, ${scores[index].toFixed(3)})`;
      context.fillRect(labelWidth + column * cell, row * rowHeight + 1, cell, rowHeight - 2);
    });
  });
  canvas.hidden = false;
}

async function loadFromUrl(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  await loadModel(new Uint8Array(await response.arrayBuffer()), url);
}

function failed(error) {
  show(String(error.message || error), true);
}

const drop = document.getElementById("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  if (event.dataTransfer.files.length) tagFile(event.dataTransfer.files[0]).catch(failed);
});
document.getElementById("audio-file").addEventListener("change", (event) => {
  if (event.target.files.length) tagFile(event.target.files[0]).catch(failed);
});
document.getElementById("model-file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (file) loadModel(new Uint8Array(await file.arrayBuffer()), file.name).catch((error) => failed(`${file.name}: ${error.message || error}`));
});

const modelUrl = new URLSearchParams(location.search).get("model") || "model.onnx";
loadFromUrl(modelUrl).catch((error) => {
  const hint = modelUrl === "model.onnx" ? " (export one with: dymn-tag export -o examples/web/model.onnx)" : "";
  failed(`${modelUrl}: ${error.message || error}${hint}`);
});
