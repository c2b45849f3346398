//! Memory Monitor's desktop app (eframe/egui): the window ([`app`]), its data source thread
//! ([`source`]) and unit formatting ([`format`]).
pub mod app;
pub mod format;
pub mod source;
