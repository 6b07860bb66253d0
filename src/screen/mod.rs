//! Sanctions screening: list importers for the published formats, list snapshots,
//! name normalisation (including Chinese), a token-indexed fuzzy matcher that explains
//! itself, and the hierarchy and ownership rules that extend a listing to subordinates
//! and 50%-owned parties.

pub mod entry;
pub mod eval;
pub mod hierarchy;
pub mod import;
pub mod lists;
pub mod matcher;
pub mod normalize;
