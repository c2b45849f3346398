//! Memory Monitor's desktop app (eframe/egui). Dependencies run one way:
//! [`app`] (the window and the one place with effects) → [`panels`] (drawing, each with its own
//! view state) → [`model`] (the data, plain Rust) → [`source`] (the data source thread);
//! [`command`], [`settings`], [`export`] and [`format`] are shared leaves; [`process_tree`]
//! (rows → tree, plain Rust) and [`end_process`] (signals, only applied after the frame) too.
pub mod app;
pub mod callsite_tree;
pub mod command;
pub mod end_process;
pub mod export;
pub mod format;
pub mod icons;
pub mod model;
pub mod panels;
pub mod process_tree;
pub mod settings;
pub mod source;
