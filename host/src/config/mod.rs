//! Configuration: the host's settings (`.env`) and the connector instances (`plugins.toml`).

pub mod plugins;
pub mod settings;

pub use plugins::{Acceptance, InstanceSpec, PluginsConfig, PluginsConfigError, Route};
pub use settings::{Env, EnvFile, LogFormat, SettingWarning, Settings, SettingsError};
