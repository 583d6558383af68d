//! Scalar functions generated code calls into. Elementary functions and
//! float16 conversions are emitted inline (`math.rs`); what is left is the
//! cold path of sin, cos and tan for |x| > 1e5, which needs a full range
//! reduction: the C library's double-precision `sin`, `cos` and `tan`
//! (libm), called on the f32 argument widened to f64 and rounded back.
//! The JIT resolves them to Rust's `f64` functions (which are libm's);
//! an object file imports them, so programs that link one link `-lm`.

use cranelift_codegen::ir::{types, AbiParam, FuncRef, Function};
use cranelift_jit::JITBuilder;
use cranelift_module::{FuncId, Linkage, Module};

use super::{cranelift, CodegenError};

/// A helper function generated code may call: `f64 -> f64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Helper {
    Sin,
    Cos,
    Tan,
}

const ALL: [Helper; 3] = [Helper::Sin, Helper::Cos, Helper::Tan];

extern "C" fn sin(x: f64) -> f64 {
    x.sin()
}
extern "C" fn cos(x: f64) -> f64 {
    x.cos()
}
extern "C" fn tan(x: f64) -> f64 {
    x.tan()
}

impl Helper {
    /// The C library's name.
    fn symbol(self) -> &'static str {
        match self {
            Helper::Sin => "sin",
            Helper::Cos => "cos",
            Helper::Tan => "tan",
        }
    }

    fn address(self) -> *const u8 {
        match self {
            Helper::Sin => sin as *const u8,
            Helper::Cos => cos as *const u8,
            Helper::Tan => tan as *const u8,
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
    legacy_sse: bool,
}

impl Imported {
    pub fn get(&self, helper: Helper) -> FuncRef {
        self.refs[ALL.iter().position(|h| *h == helper).expect("every helper is in ALL")]
    }

    /// Whether `fma` is a native instruction (else it is a libcall).
    pub fn has_fma(&self) -> bool {
        self.fma
    }

    /// Whether vector instructions are x86-64 SSE without VEX encodings,
    /// whose memory operands must be 16-byte aligned. Cranelift 0.135
    /// folds an unaligned vector load into `cmpps` there (a fault at run
    /// time), so loads of vectors are kept out of reach of that folding
    /// (see `vector::Emitter::load_vector`).
    pub fn is_legacy_sse(&self) -> bool {
        self.legacy_sse
    }
}

/// Declares every helper as an imported function of `module`.
pub fn declare<M: Module>(module: &mut M) -> Result<Declared, CodegenError> {
    ALL.iter()
        .map(|h| {
            let mut sig = module.make_signature();
            sig.params.push(AbiParam::new(types::F64));
            sig.returns.push(AbiParam::new(types::F64));
            module.declare_function(h.symbol(), Linkage::Import, &sig).map_err(cranelift)
        })
        .collect::<Result<_, _>>()
        .map(Declared)
}

impl Declared {
    pub fn import<M: Module>(&self, module: &mut M, func: &mut Function) -> Imported {
        let isa = module.isa();
        let has_avx = isa.isa_flags().iter().any(|v| v.name == "has_avx" && v.as_bool() == Some(true));
        let fma = isa.has_native_fma();
        let legacy_sse = isa.triple().architecture == target_lexicon::Architecture::X86_64 && !has_avx;
        Imported { refs: self.0.iter().map(|&id| module.declare_func_in_func(id, func)).collect(), fma, legacy_sse }
    }
}

/// Tells the JIT where every helper lives.
pub fn register(builder: &mut JITBuilder) {
    for h in ALL {
        builder.symbol(h.symbol(), h.address());
    }
}
