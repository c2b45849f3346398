//! Memory Monitor's desktop app (eframe/egui): the window ([`app`]), its data source thread
//! ([`source`]), the plot panel ([`plot`]), exports ([`export`]) and unit formatting
//! ([`format`]).
pub mod app;
pub mod export;
pub mod format;
pub mod plot;
pub mod source;
