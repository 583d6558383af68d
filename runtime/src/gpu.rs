//! The GPU executor: a lowered [`Program`] as WGSL compute shaders
//! (`kiln_codegen::wgsl`) run through wgpu on whatever adapter the system
//! has (Vulkan, Metal, DX12; in CI, Mesa's lavapipe, a Vulkan device on the
//! CPU).
//!
//! Compiling creates everything once: the arena buffer (scratch, inputs
//! and outputs, see `kiln_codegen::wgsl::Layout`), one buffer per constant
//! chunk filled with the weights, one pipeline and bind group per kernel,
//! and a staging buffer for the outputs. A run writes the inputs into the
//! arena, records every dispatch into one compute pass of one command
//! encoder (WebGPU orders the dispatches' memory effects), copies the
//! outputs to the staging buffer, submits, and maps it. Runs of one
//! compiled graph share its arena, so they take turns (a mutex); different
//! graphs run concurrently.
//!
//! Host kernels (`Kernel::Host`: exact integer arithmetic and casts the f32
//! kernels cannot do) run on the calling thread, as on the cpu backend:
//! the shaders before one are submitted, its inputs read back, the
//! reference interpreter's operator run, and its results written into the
//! arena before the next shaders. Slow, and exact.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use kiln_codegen::wgsl::{self, HostKernels, Limits, Memory, WgslProgram};
use kiln_ir::kernel::{BufferKind, Kernel, KernelError, Program};
use kiln_ir::{OperandDescriptor, Tensor};

use crate::dispatch::block_on;
use crate::RuntimeError;

fn gpu_error(message: impl Into<String>) -> RuntimeError {
    RuntimeError::Gpu(message.into())
}

/// A wgpu device and what the code generator needs to know about it.
pub(crate) struct GpuDevice {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter: wgpu::AdapterInfo,
    limits: Limits,
    /// Errors wgpu reported outside any error scope.
    errors: Arc<Mutex<Vec<String>>>,
}

impl GpuDevice {
    /// The system's preferred adapter (high performance first), with its
    /// full limits. Adapters that report themselves non-conformant (such as
    /// lavapipe) are accepted.
    pub(crate) fn new() -> Result<Self, RuntimeError> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        desc.flags |= wgpu::InstanceFlags::ALLOW_UNDERLYING_NONCOMPLIANT_ADAPTER;
        let instance = wgpu::Instance::new(desc);
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            force_fallback_adapter: false,
            compatible_surface: None,
            ..Default::default()
        };
        let adapter = block_on(instance.request_adapter(&options))
            .map_err(|e| gpu_error(format!("no GPU adapter: {e} (on Linux without a GPU, install Mesa's lavapipe: mesa-vulkan-drivers)")))?;
        let device_desc = wgpu::DeviceDescriptor {
            label: Some("kiln"),
            required_limits: adapter.limits(),
            ..Default::default()
        };
        let (device, queue) =
            block_on(adapter.request_device(&device_desc)).map_err(|e| gpu_error(format!("requesting a device: {e}")))?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&errors);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(e.to_string());
        }));
        let l = device.limits();
        let limits = Limits {
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size.min(l.max_buffer_size),
            max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            max_buffer_size: l.max_buffer_size,
            min_storage_buffer_offset_alignment: l.min_storage_buffer_offset_alignment,
        };
        Ok(GpuDevice { device, queue, adapter: adapter.get_info(), limits, errors })
    }

    /// The adapter's name and backend, for people.
    pub(crate) fn describe(&self) -> String {
        format!("{} ({:?}, {:?})", self.adapter.name, self.adapter.backend, self.adapter.device_type)
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Runs `f` with wgpu's errors on this thread captured (error scopes
    /// are per thread) and fails with them, `what` saying what failed.
    /// Errors no scope caught (none of kiln's calls run outside one) are
    /// reported too rather than lost.
    fn scoped<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T, RuntimeError> {
        let scopes = self.push_scopes();
        let value = f();
        self.pop_scopes(scopes, what)?;
        Ok(value)
    }

    /// Error scopes for every kind of error, on this thread.
    fn push_scopes(&self) -> Vec<wgpu::ErrorScopeGuard> {
        let filters = [wgpu::ErrorFilter::Validation, wgpu::ErrorFilter::OutOfMemory, wgpu::ErrorFilter::Internal];
        filters.into_iter().map(|filter| self.device.push_error_scope(filter)).collect()
    }

    /// Pops `scopes` (see [`GpuDevice::scoped`]).
    fn pop_scopes(&self, scopes: Vec<wgpu::ErrorScopeGuard>, what: &str) -> Result<(), RuntimeError> {
        let mut errors: Vec<String> =
            scopes.into_iter().rev().filter_map(|scope| block_on(scope.pop())).map(|e| e.to_string()).collect();
        errors.extend(std::mem::take(&mut *self.errors.lock().unwrap_or_else(|p| p.into_inner())));
        if errors.is_empty() { Ok(()) } else { Err(gpu_error(format!("{what}: {}", errors.join("; ")))) }
    }
}

/// One kernel's dispatch.
struct Step {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
}

/// A part of a run.
enum Segment {
    /// Consecutive shaders, one compute pass.
    Shaders(Vec<Step>),
    /// The host kernel at this index of the program, and the staging
    /// buffer its arena inputs are read back through.
    Host { kernel: usize, staging: wgpu::Buffer },
}

/// A region of the arena the caller's tensors pass through.
struct Io {
    name: String,
    offset: u64,
    bytes: u64,
}

/// A program compiled to shaders and the GPU objects that run them.
pub(crate) struct GpuExecutable {
    program: Program,
    shaders: WgslProgram,
    device: Arc<GpuDevice>,
    arena: wgpu::Buffer,
    _constants: Vec<wgpu::Buffer>,
    segments: Vec<Segment>,
    inputs: Vec<Io>,
    outputs: Vec<(Io, OperandDescriptor)>,
    staging: wgpu::Buffer,
    turn: Mutex<()>,
}

/// Shader `s`'s pipeline and its bind group over the program's memories.
fn make_pipeline(d: &wgpu::Device, s: &wgsl::Shader, arena: &wgpu::Buffer, constants: &[wgpu::Buffer]) -> (usize, Step) {
    let label = format!("kiln k{}", s.kernel);
    let module = d.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(&label),
        source: wgpu::ShaderSource::Naga(Cow::Owned(s.module.clone())),
    });
    let pipeline = d.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(&label),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let entries: Vec<wgpu::BindGroupEntry> = s
        .bindings
        .iter()
        .enumerate()
        .map(|(n, b)| wgpu::BindGroupEntry {
            binding: n as u32,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: match b.memory {
                    Memory::Arena => arena,
                    Memory::Constants(c) => &constants[c],
                },
                offset: b.offset,
                size: std::num::NonZeroU64::new(b.size),
            }),
        })
        .collect();
    let bind_group = d.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(&label),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &entries,
    });
    (s.kernel, Step { pipeline, bind_group, workgroups: s.workgroups })
}

/// Byte counts the copy commands need: multiples of 4.
fn padded(n: u64) -> u64 {
    n.div_ceil(4) * 4
}

impl GpuExecutable {
    pub(crate) fn new(
        program: Program,
        device: Arc<GpuDevice>,
        outputs: Vec<(String, OperandDescriptor)>,
    ) -> Result<Self, RuntimeError> {
        let shaders = wgsl::compile(&program, device.limits(), HostKernels::CallerRuns).map_err(|e| match e {
            wgsl::WgslError::Invalid(k) => RuntimeError::Kernel(k),
            other => RuntimeError::Codegen(other.to_string()),
        })?;
        let d = &device.device;
        let scopes = device.push_scopes();
        let layout = &shaders.layout;
        let arena = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kiln arena"),
            size: layout.arena_bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let mut constants = Vec::with_capacity(layout.constants.len());
        for (n, bytes) in layout.constants.iter().enumerate() {
            let buffer = d.create_buffer(&wgpu::BufferDescriptor {
                label: Some(&format!("kiln constants {n}")),
                size: bytes.len() as u64,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: true,
            });
            buffer
                .slice(..)
                .get_mapped_range_mut()
                .map_err(|e| gpu_error(format!("filling constant chunk {n}: {e}")))?
                .copy_from_slice(bytes);
            buffer.unmap();
            constants.push(buffer);
        }
        // Pipelines are compiled by the driver (on lavapipe, by LLVM): on
        // all cores, each thread taking every `threads`-th shader.
        let make_step = |s: &wgsl::Shader| -> Result<(usize, Step), RuntimeError> {
            device.scoped(&format!("creating kernel {}'s pipeline", s.kernel), || make_pipeline(d, s, &arena, &constants))
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(shaders.shaders.len().max(1));
        let mut steps: Vec<(usize, Step)> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let make_step = &make_step;
                    let all = &shaders.shaders;
                    scope.spawn(move || all.iter().skip(t).step_by(threads).map(make_step).collect::<Result<Vec<_>, _>>())
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                .collect::<Result<Vec<_>, _>>()
                .map(|v| v.into_iter().flatten().collect())
        })?;
        steps.sort_by_key(|(k, _)| *k);
        // Program order: shaders grouped between host kernels.
        let mut segments = Vec::new();
        let mut steps = steps.into_iter().peekable();
        for (k, kernel) in program.kernels.iter().enumerate() {
            if let Kernel::Host(h) = kernel {
                let bytes: u64 = h.inputs.iter().map(|i| padded(program.buffer(i.buffer).byte_len() as u64)).sum();
                let staging = d.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("kiln k{k} host inputs")),
                    size: bytes.max(4),
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                segments.push(Segment::Host { kernel: k, staging });
                continue;
            }
            if let Some(step) = steps.next_if(|(s, _)| *s == k).map(|(_, s)| s) {
                match segments.last_mut() {
                    Some(Segment::Shaders(run)) => run.push(step),
                    _ => segments.push(Segment::Shaders(vec![step])),
                }
            }
        }
        let io = |kind: fn(&BufferKind) -> Option<&String>| -> Vec<Io> {
            program
                .buffers
                .iter()
                .enumerate()
                .filter_map(|(i, b)| {
                    kind(&b.kind).map(|name| Io {
                        name: name.clone(),
                        offset: layout.buffers[i].offset,
                        bytes: b.byte_len() as u64,
                    })
                })
                .collect()
        };
        let inputs = io(|k| if let BufferKind::Input(n) = k { Some(n) } else { None });
        let mut output_io = io(|k| if let BufferKind::Output(n) = k { Some(n) } else { None });
        let outputs = outputs
            .into_iter()
            .map(|(name, desc)| {
                let at = output_io
                    .iter()
                    .position(|o| o.name == name)
                    .ok_or_else(|| RuntimeError::MissingBuffer(name.clone()))?;
                Ok((output_io.swap_remove(at), desc))
            })
            .collect::<Result<Vec<_>, RuntimeError>>()?;
        let staging_bytes: u64 = outputs.iter().map(|(o, _)| padded(o.bytes)).sum();
        let staging = d.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kiln outputs"),
            size: staging_bytes.max(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        device.pop_scopes(scopes, "creating the buffers")?;
        Ok(GpuExecutable {
            program,
            shaders,
            device,
            arena,
            _constants: constants,
            segments,
            inputs,
            outputs,
            staging,
            turn: Mutex::new(()),
        })
    }

    pub(crate) fn program(&self) -> &Program {
        &self.program
    }

    /// The shaders, in program order.
    pub(crate) fn shaders(&self) -> &WgslProgram {
        &self.shaders
    }

    /// Runs the program on `inputs` (already checked against the graph).
    pub(crate) fn run(&self, inputs: &[(&str, &Tensor)]) -> Result<Vec<(String, Tensor)>, RuntimeError> {
        let _turn = self.turn.lock().map_err(|_| RuntimeError::Poisoned)?;
        let scopes = self.device.push_scopes();
        let (device, queue) = (&self.device.device, &self.device.queue);
        for io in &self.inputs {
            let (_, t) = inputs
                .iter()
                .find(|(n, _)| *n == io.name)
                .ok_or_else(|| RuntimeError::MissingBuffer(io.name.clone()))?;
            let bytes = t.bytes();
            if bytes.len() as u64 != io.bytes {
                return Err(RuntimeError::MissingBuffer(io.name.clone()));
            }
            if bytes.is_empty() {
                continue;
            }
            if bytes.len() % 4 == 0 {
                queue.write_buffer(&self.arena, io.offset, bytes);
            } else {
                let mut word_aligned = bytes.to_vec();
                word_aligned.resize(padded(io.bytes) as usize, 0);
                queue.write_buffer(&self.arena, io.offset, &word_aligned);
            }
        }
        for segment in &self.segments {
            match segment {
                Segment::Shaders(steps) => {
                    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("kiln run") });
                    {
                        let mut pass =
                            encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
                        for s in steps {
                            pass.set_pipeline(&s.pipeline);
                            pass.set_bind_group(0, &s.bind_group, &[]);
                            let [x, y, z] = s.workgroups;
                            pass.dispatch_workgroups(x, y, z);
                        }
                    }
                    queue.submit([encoder.finish()]);
                }
                Segment::Host { kernel, staging } => self.run_host(*kernel, staging)?,
            }
        }
        let copies: Vec<(u64, u64)> = self.outputs.iter().map(|(o, _)| (o.offset, o.bytes)).collect();
        let bytes = self.read_back(&self.staging, &copies)?;
        self.device.pop_scopes(scopes, "running the shaders")?;
        let mut results = Vec::with_capacity(self.outputs.len());
        for ((o, desc), bytes) in self.outputs.iter().zip(bytes) {
            let t = Tensor::from_bytes(desc.clone(), bytes).map_err(|e| gpu_error(format!("output `{}`: {e}", o.name)))?;
            results.push((o.name.clone(), t));
        }
        Ok(results)
    }

    /// Copies `(arena offset, bytes)` ranges to `staging` after everything
    /// submitted so far, waits, and returns their bytes.
    fn read_back(&self, staging: &wgpu::Buffer, ranges: &[(u64, u64)]) -> Result<Vec<Vec<u8>>, RuntimeError> {
        let (device, queue) = (&self.device.device, &self.device.queue);
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("kiln read-back") });
        let mut at = 0;
        for &(offset, bytes) in ranges {
            if bytes > 0 {
                encoder.copy_buffer_to_buffer(&self.arena, offset, staging, at, padded(bytes));
            }
            at += padded(bytes);
        }
        queue.submit([encoder.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| gpu_error(format!("waiting for the device: {e}")))?;
        rx.recv()
            .map_err(|_| gpu_error("the device dropped the read-back"))?
            .map_err(|e| gpu_error(format!("reading back: {e}")))?;
        // Unmapped whatever happens, so that the next run can map it again.
        let out = staging.slice(..).get_mapped_range().map(|view| {
            let mut at = 0usize;
            ranges
                .iter()
                .map(|&(_, bytes)| {
                    let v = view[at..at + bytes as usize].to_vec();
                    at += padded(bytes) as usize;
                    v
                })
                .collect()
        });
        staging.unmap();
        out.map_err(|e| gpu_error(format!("reading back: {e}")))
    }

    /// Runs host kernel `k`: reads its arena inputs back through
    /// `staging`, runs the operator, writes its results into the arena.
    fn run_host(&self, k: usize, staging: &wgpu::Buffer) -> Result<(), RuntimeError> {
        let Some(Kernel::Host(h)) = self.program.kernels.get(k) else {
            return Err(RuntimeError::Codegen(format!("kernel {k} is not a host kernel")));
        };
        let fail = |message: String| RuntimeError::Kernel(KernelError { kernel: k, kind: "host", message });
        let layout = &self.shaders.layout;
        // Constants come from the program; the others from the arena.
        let ranges: Vec<(u64, u64)> = h
            .inputs
            .iter()
            .map(|i| match layout.buffers[i.buffer.0 as usize] {
                p if p.memory == Memory::Arena => (p.offset, self.program.buffer(i.buffer).byte_len() as u64),
                _ => (0, 0),
            })
            .collect();
        let mut read = self.read_back(staging, &ranges)?.into_iter();
        let mut tensors = Vec::with_capacity(h.inputs.len());
        for i in &h.inputs {
            let bytes = read.next().unwrap_or_default();
            let t = match &self.program.buffer(i.buffer).kind {
                BufferKind::Constant(t) => Tensor::new(i.desc.clone(), t.shared_bytes().clone()),
                _ => Tensor::from_bytes(i.desc.clone(), bytes),
            };
            tensors.push(t.map_err(|e| fail(e.to_string()))?);
        }
        let results = h.run(&tensors).map_err(fail)?;
        if results.len() != h.outputs.len() {
            return Err(fail(format!("{} results for {} outputs", results.len(), h.outputs.len())));
        }
        for (o, t) in h.outputs.iter().zip(&results) {
            let offset = layout.buffers[o.buffer.0 as usize].offset;
            let bytes = t.bytes();
            if bytes.len() != self.program.buffer(o.buffer).byte_len() {
                return Err(fail(format!("a result of {} bytes for {}", bytes.len(), o.buffer)));
            }
            if !bytes.is_empty() {
                // Buffers start word-aligned and end before the next word-aligned one.
                let mut word_aligned = bytes.to_vec();
                word_aligned.resize(padded(bytes.len() as u64) as usize, 0);
                self.device.queue.write_buffer(&self.arena, offset, &word_aligned);
            }
        }
        Ok(())
    }
}
