//! Scalar functions generated code calls into. Elementary functions and
//! float16 conversions are emitted inline (`math.rs`); what is left is the
//! cold path of sin, cos and tan for |x| > 1e5, which needs a full range
//! reduction. They are registered with the JIT by name and imported into
//! each kernel.

use cranelift_codegen::ir::{types, AbiParam, FuncRef, Function, Type};
use cranelift_jit::JITBuilder;
use cranelift_module::{FuncId, Linkage, Module};

use super::{cranelift, CodegenError};

/// A helper function generated code may call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Helper {
    Sin,
    Cos,
    Tan,
    /// `kiln_gemm_scratch(bytes) -> ptr`: the GEMM packing buffers.
    GemmScratch,
}

const ALL: [Helper; 4] = [Helper::Sin, Helper::Cos, Helper::Tan, Helper::GemmScratch];

extern "C" fn kiln_sin(x: f32) -> f32 {
    (x as f64).sin() as f32
}
extern "C" fn kiln_cos(x: f32) -> f32 {
    (x as f64).cos() as f32
}
extern "C" fn kiln_tan(x: f32) -> f32 {
    (x as f64).tan() as f32
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
            Helper::Sin => "kiln_sin",
            Helper::Cos => "kiln_cos",
            Helper::Tan => "kiln_tan",
            Helper::GemmScratch => "kiln_gemm_scratch",
        }
    }

    fn address(self) -> *const u8 {
        match self {
            Helper::Sin => kiln_sin as *const u8,
            Helper::Cos => kiln_cos as *const u8,
            Helper::Tan => kiln_tan as *const u8,
            Helper::GemmScratch => kiln_gemm_scratch as *const u8,
        }
    }

    fn signature(self) -> (&'static [Type], Type) {
        match self {
            Helper::GemmScratch => (&[types::I64], types::I64),
            _ => (&[types::F32], types::F32),
        }
    }
}

/// The helpers as declared in one module.
pub struct Declared(Vec<FuncId>);

/// The helpers as imported into one function, and what the target's
/// instruction set offers the function.
pub struct Imported {
    refs: Vec<FuncRef>,
    fma: bool,
}

impl Imported {
    pub fn get(&self, helper: Helper) -> FuncRef {
        self.refs[ALL.iter().position(|h| *h == helper).expect("every helper is in ALL")]
    }

    /// Whether `fma` is a native instruction (else it is a libcall).
    pub fn has_fma(&self) -> bool {
        self.fma
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
        Imported {
            refs: self.0.iter().map(|&id| module.declare_func_in_func(id, func)).collect(),
            fma: module.isa().has_native_fma(),
        }
    }
}

/// Tells the JIT where every helper lives.
pub fn register(builder: &mut JITBuilder) {
    for h in ALL {
        builder.symbol(h.symbol(), h.address());
    }
}
