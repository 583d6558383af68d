//! kiln's code generators. `cpu`: native code through Cranelift, JIT-compiled
//! into the process.

pub mod cpu;
