//! kiln's code generators. `cpu`: native code through Cranelift, JIT-compiled
//! into the process or written to object files. `wgsl`: WGSL compute
//! shaders, validated by naga, for WebGPU (native through wgpu, or a browser).

pub mod cpu;
pub mod wgsl;
