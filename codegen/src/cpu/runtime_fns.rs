//! Scalar functions generated code calls into: transcendental functions
//! Cranelift has no instruction for, and float16 conversions. They are
//! registered with the JIT by name and imported into each kernel.

use cranelift_codegen::ir::{types, AbiParam, FuncRef, Function, Type};
use cranelift_jit::JITBuilder;
use cranelift_module::{FuncId, Linkage, Module};
use half::f16;

use super::{cranelift, CodegenError};

/// A helper function generated code may call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Helper {
    Exp,
    Log,
    Erf,
    Sin,
    Cos,
    Tan,
    Tanh,
    Pow,
    RoundF16,
    F16BitsToF32,
    F32ToF16Bits,
    /// `kiln_gemm_scratch(bytes) -> ptr`: the GEMM packing buffers.
    GemmScratch,
}

const ALL: [Helper; 12] = [
    Helper::Exp,
    Helper::Log,
    Helper::Erf,
    Helper::Sin,
    Helper::Cos,
    Helper::Tan,
    Helper::Tanh,
    Helper::Pow,
    Helper::RoundF16,
    Helper::F16BitsToF32,
    Helper::F32ToF16Bits,
    Helper::GemmScratch,
];

extern "C" fn kiln_exp(x: f32) -> f32 {
    x.exp()
}
extern "C" fn kiln_log(x: f32) -> f32 {
    x.ln()
}
extern "C" fn kiln_erf(x: f32) -> f32 {
    kiln_ir::interp::erf(x as f64) as f32
}
extern "C" fn kiln_sin(x: f32) -> f32 {
    x.sin()
}
extern "C" fn kiln_cos(x: f32) -> f32 {
    x.cos()
}
extern "C" fn kiln_tan(x: f32) -> f32 {
    (x as f64).tan() as f32
}
extern "C" fn kiln_tanh(x: f32) -> f32 {
    x.tanh()
}
extern "C" fn kiln_pow(x: f32, y: f32) -> f32 {
    (x as f64).powf(y as f64) as f32
}
extern "C" fn kiln_round_f16(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}
extern "C" fn kiln_f16_bits_to_f32(bits: i32) -> f32 {
    f16::from_bits(bits as u16).to_f32()
}
extern "C" fn kiln_f32_to_f16_bits(x: f32) -> i32 {
    f16::from_f32(x).to_bits() as i32
}

/// One cache line, the unit of the GEMM scratch buffer.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct Line(#[allow(dead_code, reason = "only its size and alignment matter")] [u8; 64]);

thread_local! {
    static GEMM_SCRATCH: std::cell::RefCell<Vec<Line>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A 64-byte aligned buffer of at least `bytes` bytes, private to the
/// calling thread. It stays valid until the next call on the same thread
/// (a kernel calls this once, at its start, and kernels do not nest). It
/// grows on demand and is otherwise reused, so a warm thread allocates
/// nothing.
extern "C" fn kiln_gemm_scratch(bytes: u64) -> *mut u8 {
    GEMM_SCRATCH.with(|s| {
        let mut v = s.borrow_mut();
        let lines = (bytes as usize).div_ceil(64);
        if v.len() < lines {
            *v = vec![Line([0; 64]); lines];
        }
        v.as_mut_ptr().cast()
    })
}

impl Helper {
    fn symbol(self) -> &'static str {
        match self {
            Helper::Exp => "kiln_exp",
            Helper::Log => "kiln_log",
            Helper::Erf => "kiln_erf",
            Helper::Sin => "kiln_sin",
            Helper::Cos => "kiln_cos",
            Helper::Tan => "kiln_tan",
            Helper::Tanh => "kiln_tanh",
            Helper::Pow => "kiln_pow",
            Helper::RoundF16 => "kiln_round_f16",
            Helper::F16BitsToF32 => "kiln_f16_bits_to_f32",
            Helper::F32ToF16Bits => "kiln_f32_to_f16_bits",
            Helper::GemmScratch => "kiln_gemm_scratch",
        }
    }

    fn address(self) -> *const u8 {
        match self {
            Helper::Exp => kiln_exp as *const u8,
            Helper::Log => kiln_log as *const u8,
            Helper::Erf => kiln_erf as *const u8,
            Helper::Sin => kiln_sin as *const u8,
            Helper::Cos => kiln_cos as *const u8,
            Helper::Tan => kiln_tan as *const u8,
            Helper::Tanh => kiln_tanh as *const u8,
            Helper::Pow => kiln_pow as *const u8,
            Helper::RoundF16 => kiln_round_f16 as *const u8,
            Helper::F16BitsToF32 => kiln_f16_bits_to_f32 as *const u8,
            Helper::F32ToF16Bits => kiln_f32_to_f16_bits as *const u8,
            Helper::GemmScratch => kiln_gemm_scratch as *const u8,
        }
    }

    fn signature(self) -> (&'static [Type], Type) {
        match self {
            Helper::Pow => (&[types::F32, types::F32], types::F32),
            Helper::F16BitsToF32 => (&[types::I32], types::F32),
            Helper::F32ToF16Bits => (&[types::F32], types::I32),
            Helper::GemmScratch => (&[types::I64], types::I64),
            _ => (&[types::F32], types::F32),
        }
    }
}

/// The helpers as declared in one module.
pub struct Declared(Vec<FuncId>);

/// The helpers as imported into one function.
pub struct Imported(Vec<FuncRef>);

impl Imported {
    pub fn get(&self, helper: Helper) -> FuncRef {
        self.0[ALL.iter().position(|h| *h == helper).expect("every helper is in ALL")]
    }
}

/// Declares every helper as an imported function of `module`.
pub fn declare<M: Module>(module: &mut M) -> Result<Declared, CodegenError> {
    ALL.iter()
        .map(|h| {
            let mut sig = module.make_signature();
            let (params, ret) = h.signature();
            sig.params.extend(params.iter().map(|&t| AbiParam::new(t)));
            sig.returns.push(AbiParam::new(ret));
            module.declare_function(h.symbol(), Linkage::Import, &sig).map_err(cranelift)
        })
        .collect::<Result<_, _>>()
        .map(Declared)
}

impl Declared {
    pub fn import<M: Module>(&self, module: &mut M, func: &mut Function) -> Imported {
        Imported(self.0.iter().map(|&id| module.declare_func_in_func(id, func)).collect())
    }
}

/// Tells the JIT where every helper lives.
pub fn register(builder: &mut JITBuilder) {
    for h in ALL {
        builder.symbol(h.symbol(), h.address());
    }
}
