//! Code generation targets: an explicit x86-64 feature level, whatever the
//! host, so that emitted code is reproducible; or the host's own level.

use std::fmt;
use std::str::FromStr;

use cranelift_codegen::isa::{self, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};

use super::CodegenError;

/// An x86-64 feature level kiln generates code for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Features {
    /// x86-64 with SSE4.2: Cranelift F32X4 code only.
    Baseline,
    /// AVX2 and FMA.
    Avx2,
    /// AVX-512 F, VL, DQ and BW.
    Avx512,
}

/// A target: the x86-64 feature level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    pub features: Features,
}

impl Target {
    /// Whether the code generator has direct convolution kernels for this
    /// level (see `kiln_passes::LowerOptions::direct_convolution`): the
    /// AVX-512 window sums.
    pub fn direct_convolution(&self) -> bool {
        self.features == Features::Avx512
    }

    /// The best level this machine runs.
    pub fn host() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let features = if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512vl")
                && std::is_x86_feature_detected!("avx512dq")
                && std::is_x86_feature_detected!("avx512bw")
            {
                Features::Avx512
            } else if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                Features::Avx2
            } else {
                Features::Baseline
            };
            Target { features }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Target { features: Features::Baseline }
    }

    /// Every level this machine can run, lowest first (for tests).
    pub fn host_levels() -> Vec<Target> {
        let host = Target::host();
        [Features::Baseline, Features::Avx2, Features::Avx512]
            .into_iter()
            .filter(|f| *f <= host.features && cfg!(target_arch = "x86_64"))
            .map(|features| Target { features })
            .collect()
    }

    /// Whether code for this target runs on this machine.
    pub fn is_host_compatible(&self) -> bool {
        cfg!(target_arch = "x86_64") && self.features <= Target::host().features
    }

    /// The Cranelift ISA with exactly this level's flags.
    pub fn isa(&self) -> Result<OwnedTargetIsa, CodegenError> {
        let err = |e: &dyn fmt::Display| CodegenError::Target(e.to_string());
        let mut shared = settings::builder();
        shared.set("opt_level", "speed").map_err(|e| err(&e))?;
        // Cranelift's IR verifier checks every function before code
        // generation; debug builds (the tests) keep it, release builds skip
        // it (it took about a tenth of compile time).
        let verify = if cfg!(debug_assertions) { "true" } else { "false" };
        shared.set("enable_verifier", verify).map_err(|e| err(&e))?;
        let triple = target_lexicon::Triple::from_str("x86_64-unknown-linux-gnu").map_err(|e| err(&e))?;
        let mut b = isa::lookup(triple).map_err(|e| err(&e))?;
        let mut flags = vec!["has_sse3", "has_ssse3", "has_sse41", "has_sse42", "has_popcnt"];
        if self.features >= Features::Avx2 {
            flags.extend(["has_avx", "has_avx2", "has_fma", "has_bmi1", "has_bmi2", "has_lzcnt"]);
        }
        if self.features >= Features::Avx512 {
            flags.extend(["has_avx512f", "has_avx512vl", "has_avx512dq"]);
        }
        for f in flags {
            b.enable(f).map_err(|e| err(&e))?;
        }
        b.finish(settings::Flags::new(shared)).map_err(|e| err(&e))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.features {
            Features::Baseline => "x86_64",
            Features::Avx2 => "x86_64+avx2",
            Features::Avx512 => "x86_64+avx512",
        })
    }
}

impl FromStr for Target {
    type Err = CodegenError;

    /// `native`, `x86_64`, `x86_64+avx2` or `x86_64+avx512`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let features = match s {
            "native" => return Ok(Target::host()),
            "x86_64" => Features::Baseline,
            "x86_64+avx2" => Features::Avx2,
            "x86_64+avx512" => Features::Avx512,
            other => {
                return Err(CodegenError::Target(format!(
                    "unknown target `{other}` (native, x86_64, x86_64+avx2, x86_64+avx512)"
                )))
            }
        };
        Ok(Target { features })
    }
}
