//! TODO
use super::Handler;

pub const TABLE: &[(&str, Handler)] = &[];
