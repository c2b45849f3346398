//! The window's panels. Each is its own type holding only its view state, drawn by
//! `ui(&mut self, ui, &Model, &mut Vec<Command>)`: it reads the model and records what the user
//! asked for; it never changes the model, talks to the source or writes files.

pub mod app_plot;
pub mod apps;
pub mod banner;
pub mod callsites;
pub mod end_dialog;
pub mod grid;
pub mod oom;
pub mod plot;
pub mod status_bar;
pub mod table;
pub mod tree;
pub mod view_tabs;
