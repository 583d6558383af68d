// kiln.js: runs a model compiled by `kiln compile MODEL --target wgsl` with
// WebGPU, in a browser (or any JavaScript host with navigator.gpu).
//
//   import { load } from "./kiln.js";
//   const model = await load("./model.json");         // fetches the bundle
//   const outputs = await model.run({ x: new Float32Array(n) });
//
// Inputs and outputs are typed arrays of the tensor's data type (float16
// as Uint16Array bits, int64 as BigInt64Array), keyed by name; the
// descriptors are in model.inputs and model.outputs. Runs of one model take
// turns; every resource is created once, in load().

const ARRAYS = {
  float32: Float32Array,
  float16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
  int8: Int8Array,
  uint8: Uint8Array,
};

function fail(message) {
  return new Error(`kiln: ${message}`);
}

const padded = (n) => Math.ceil(n / 4) * 4;

export async function load(manifestUrl, { device } = {}) {
  const url = new URL(manifestUrl, globalThis.location?.href);
  const get = async (name) => {
    const response = await fetch(new URL(name, url));
    if (!response.ok) throw fail(`${name}: HTTP ${response.status}`);
    return response;
  };
  const response = await fetch(url);
  if (!response.ok) throw fail(`${url}: HTTP ${response.status}`);
  const manifest = await response.json();
  if (manifest.format !== "kiln-webgpu-1") throw fail(`${url}: not a kiln WebGPU manifest`);
  if (!device) {
    if (!globalThis.navigator?.gpu) throw fail("this browser has no WebGPU (navigator.gpu)");
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) throw fail("no WebGPU adapter");
    device = await adapter.requestDevice();
  }
  const usage = GPUBufferUsage;
  device.pushErrorScope("out-of-memory");
  device.pushErrorScope("validation");
  const memories = new Map();
  memories.set("arena", device.createBuffer({
    label: "kiln arena",
    size: manifest.arenaBytes,
    usage: usage.STORAGE | usage.COPY_DST | usage.COPY_SRC,
  }));
  for (const c of manifest.constants) {
    const bytes = new Uint8Array(await (await get(c.file)).arrayBuffer());
    if (bytes.byteLength !== c.bytes) throw fail(`${c.file}: ${bytes.byteLength} bytes, expected ${c.bytes}`);
    const buffer = device.createBuffer({ label: c.file, size: c.bytes, usage: usage.STORAGE, mappedAtCreation: true });
    new Uint8Array(buffer.getMappedRange()).set(bytes);
    buffer.unmap();
    memories.set(c.memory, buffer);
  }
  const steps = await Promise.all(manifest.kernels.map(async (k) => {
    const code = await (await get(k.shader)).text();
    const module = device.createShaderModule({ label: k.shader, code });
    const pipeline = await device.createComputePipelineAsync({
      label: k.shader,
      layout: "auto",
      compute: { module, entryPoint: "main" },
    });
    const bindGroup = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: k.bindings.map((b, binding) => ({
        binding,
        resource: { buffer: memories.get(b.memory), offset: b.offset, size: b.size },
      })),
    });
    return { pipeline, bindGroup, workgroups: k.workgroups };
  }));
  const stagingBytes = manifest.outputs.reduce((n, o) => n + padded(o.bytes), 0);
  const staging = device.createBuffer({
    label: "kiln outputs",
    size: Math.max(stagingBytes, 4),
    usage: usage.MAP_READ | usage.COPY_DST,
  });
  await popErrors(device, "loading the model");
  return new Model(device, manifest, memories.get("arena"), steps, staging);
}

// Pops the two error scopes pushed before `what` and throws what they caught.
async function popErrors(device, what) {
  const errors = [await device.popErrorScope(), await device.popErrorScope()].filter((e) => e);
  if (errors.length > 0) throw fail(`${what}: ${errors.map((e) => e.message).join("; ")}`);
}

class Model {
  constructor(device, manifest, arena, steps, staging) {
    this.device = device;
    this.inputs = manifest.inputs;
    this.outputs = manifest.outputs;
    this.arena = arena;
    this.steps = steps;
    this.staging = staging;
    this.turn = Promise.resolve();
  }

  run(feeds) {
    const result = this.turn.then(() => this.#run(feeds));
    this.turn = result.catch(() => {});
    return result;
  }

  async #run(feeds) {
    this.#check(feeds);
    const { device } = this;
    device.pushErrorScope("out-of-memory");
    device.pushErrorScope("validation");
    this.#submit(feeds);
    await popErrors(device, "running the model");
    await this.staging.mapAsync(GPUMapMode.READ);
    try {
      const mapped = this.staging.getMappedRange();
      const results = {};
      let at = 0;
      for (const o of this.outputs) {
        results[o.name] = new ARRAYS[o.dataType](mapped.slice(at, at + o.bytes));
        at += padded(o.bytes);
      }
      return results;
    } finally {
      this.staging.unmap();
    }
  }

  #check(feeds) {
    for (const t of this.inputs) {
      const data = feeds[t.name];
      if (data === undefined) throw fail(`missing input "${t.name}"`);
      if (!(data instanceof ARRAYS[t.dataType])) throw fail(`input "${t.name}" must be a ${ARRAYS[t.dataType].name}`);
      if (data.byteLength !== t.bytes) throw fail(`input "${t.name}" has ${data.byteLength} bytes, expected ${t.bytes}`);
    }
  }

  // Writes the inputs, records every dispatch and the output copies, submits.
  #submit(feeds) {
    const { device, arena } = this;
    for (const t of this.inputs) {
      if (t.bytes === 0) continue;
      const data = feeds[t.name];
      let bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      if (bytes.byteLength % 4 !== 0) {
        const word = new Uint8Array(padded(bytes.byteLength));
        word.set(bytes);
        bytes = word;
      }
      device.queue.writeBuffer(arena, t.offset, bytes);
    }
    const encoder = device.createCommandEncoder({ label: "kiln run" });
    const pass = encoder.beginComputePass();
    for (const s of this.steps) {
      pass.setPipeline(s.pipeline);
      pass.setBindGroup(0, s.bindGroup);
      pass.dispatchWorkgroups(...s.workgroups);
    }
    pass.end();
    let at = 0;
    for (const o of this.outputs) {
      if (o.bytes > 0) encoder.copyBufferToBuffer(arena, o.offset, this.staging, at, padded(o.bytes));
      at += padded(o.bytes);
    }
    device.queue.submit([encoder.finish()]);
  }
}
