//! Placeholder until this engine lands.
