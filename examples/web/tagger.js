// Tagging in the browser, free of the page: the graph's own metadata, decoding and resampling to the
// model's rate with the browser's OfflineAudioContext, windows cut as dymn-tag cuts them, scores.
// The graph is one that `dymn-tag export` wrote: input `waveform` [batch, samples], outputs `logits`
// and `embedding`, metadata_props as dymn_cli/graph_metadata.py writes them.

const FORMAT = "dymn-cli-onnx/1";
const METADATA_FIELD = 14; // ModelProto.metadata_props (repeated StringStringEntryProto)

// onnxruntime-web does not expose a model's metadata_props, so read them from the protobuf itself:
// only ModelProto's top-level fields are walked, whose layout is fixed by onnx.proto.
export function readMetadata(bytes) {
  const reader = new ProtoReader(bytes);
  const props = {};
  while (!reader.done()) {
    const [field, wireType] = reader.tag();
    if (field === METADATA_FIELD && wireType === 2) {
      const entry = new ProtoReader(reader.bytes());
      let key = "";
      let value = "";
      while (!entry.done()) {
        const [entryField, entryType] = entry.tag();
        if (entryType !== 2) { entry.skip(entryType); continue; }
        const text = new TextDecoder().decode(entry.bytes());
        if (entryField === 1) key = text; else if (entryField === 2) value = text;
      }
      props[key] = value;
    } else {
      reader.skip(wireType);
    }
  }
  if (props.format !== FORMAT) throw new Error("not a graph written by `dymn-tag export` (no metadata)");
  return {
    labels: JSON.parse(props.labels),
    mids: JSON.parse(props.mids),
    model: props.model,
    sampleRate: Number(props.sample_rate),
    window: Number(props.window),
    hop: Number(props.hop),
    activation: props.activation,
  };
}

class ProtoReader {
  constructor(bytes) { this.buffer = bytes; this.position = 0; }
  done() { return this.position >= this.buffer.length; }
  varint() {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (this.done()) throw new Error("a truncated graph file");
      const byte = this.buffer[this.position++];
      value += (byte & 0x7f) * scale; // (no bitwise shifts: lengths may pass 2^31)
      if (byte < 0x80) return value;
      scale *= 128;
    }
  }
  tag() { const key = this.varint(); return [Math.floor(key / 8), key % 8]; }
  bytes() {
    const length = this.varint();
    const end = this.position + length;
    if (end > this.buffer.length) throw new Error("a truncated graph file");
    const slice = this.buffer.subarray(this.position, end);
    this.position = end;
    return slice;
  }
  skip(wireType) {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.position += 8;
    else if (wireType === 2) this.bytes();
    else if (wireType === 5) this.position += 4;
    else throw new Error(`not an ONNX graph (protobuf wire type ${wireType})`);
  }
}

// Decoded by the browser and resampled to `sampleRate`, channels averaged to mono as dymn-tag does.
export async function decodeAudio(arrayBuffer, sampleRate) {
  const context = new OfflineAudioContext(1, 1, sampleRate);
  const audio = await context.decodeAudioData(arrayBuffer);
  const mono = new Float32Array(audio.length);
  for (let channel = 0; channel < audio.numberOfChannels; channel++) {
    const data = audio.getChannelData(channel);
    for (let i = 0; i < mono.length; i++) mono[i] += data[i] / audio.numberOfChannels;
  }
  return mono;
}

// The grid of dymn_cli/audio/windows.py: windows every `hop` samples from 0; the last one is the first
// that reaches the end, zero-padded; audio shorter than a window is one padded window.
export function windowStarts(nSamples, window, hop) {
  const count = 1 + Math.ceil(Math.max(0, nSamples - window) / hop);
  return Array.from({ length: count }, (_, index) => index * hop);
}

export async function tagSamples(ort, session, metadata, samples, batchSize = 8) {
  const window = Math.max(1, Math.round(metadata.window * metadata.sampleRate));
  const hop = Math.max(1, Math.round(metadata.hop * metadata.sampleRate));
  const starts = windowStarts(samples.length, window, hop);
  const windows = [];
  for (let first = 0; first < starts.length; first += batchSize) {
    const batch = starts.slice(first, first + batchSize);
    const input = new Float32Array(batch.length * window);
    batch.forEach((start, row) => input.set(samples.subarray(start, start + window), row * window));
    const feeds = { waveform: new ort.Tensor("float32", input, [batch.length, window]) };
    const { logits } = await session.run(feeds);
    const classes = logits.dims[1];
    batch.forEach((start, row) => {
      const scores = activate(logits.data.subarray(row * classes, (row + 1) * classes), metadata.activation);
      windows.push({ start: start / metadata.sampleRate, end: (start + window) / metadata.sampleRate, scores });
    });
  }
  const clip = new Float64Array(metadata.labels.length);
  for (const { scores } of windows) scores.forEach((score, k) => { clip[k] += score / windows.length; });
  return { duration: samples.length / metadata.sampleRate, windows, scores: Array.from(clip) };
}

function activate(logits, activation) {
  if (activation === "softmax") {
    const peak = Math.max(...logits);
    const exps = Array.from(logits, (value) => Math.exp(value - peak));
    const total = exps.reduce((a, b) => a + b, 0);
    return exps.map((value) => value / total);
  }
  return Array.from(logits, (value) => (value >= 0 ? 1 / (1 + Math.exp(-value)) : Math.exp(value) / (1 + Math.exp(value))));
}

export function topLabels(metadata, scores, count) {
  return scores
    .map((score, index) => ({ label: metadata.labels[index], mid: metadata.mids[index], index, score }))
    .sort((a, b) => b.score - a.score || a.index - b.index)
    .slice(0, count);
}
