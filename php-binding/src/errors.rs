//! The exception tree, error codes and `quicpro_get_last_error()`.
//!
//! The classes are registered with `ClassBuilder` at module startup and
//! thrown through `PhpException` with their class entry: they are plain
//! engine exceptions (no Rust object behind them), so the engine fills in
//! the PHP file, line and trace of the call that threw, as for any
//! `RuntimeException`. Every exception also records itself as the "last
//! error" so procedural callers can read `quicpro_get_last_error()`.

use std::cell::RefCell;

use ext_php_rs::builders::ClassBuilder;
use ext_php_rs::exception::PhpException;
use ext_php_rs::zend::ClassEntry;

/// What failed. Each kind is one exception class and one error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A bad `Config` key, type or value, or an unreadable certificate file.
    Config,
    /// Creating, binding or using the UDP socket failed.
    Socket,
    /// The TLS handshake failed (certificate, ALPN, protocol).
    Tls,
    /// The connection is closed, was lost, or was never established.
    Connection,
    /// The peer closed the connection with a QUIC transport error.
    Transport,
    /// A stream was reset, refused or used after it ended.
    Stream,
    /// A deadline passed (handshake, response, body).
    Timeout,
    /// A server-side failure (the server object is stopped or unusable).
    Server,
    /// A client-side failure (bad URL/host, request refused).
    Client,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::Config,
        ErrorKind::Socket,
        ErrorKind::Tls,
        ErrorKind::Connection,
        ErrorKind::Transport,
        ErrorKind::Stream,
        ErrorKind::Timeout,
        ErrorKind::Server,
        ErrorKind::Client,
    ];

    /// The exception class (under `Quicpro\Exception\`).
    pub fn class_name(self) -> &'static str {
        match self {
            ErrorKind::Config => "Quicpro\\Exception\\ConfigException",
            ErrorKind::Socket => "Quicpro\\Exception\\SocketException",
            ErrorKind::Tls => "Quicpro\\Exception\\TlsHandshakeException",
            ErrorKind::Connection => "Quicpro\\Exception\\ConnectionException",
            ErrorKind::Transport => "Quicpro\\Exception\\TransportException",
            ErrorKind::Stream => "Quicpro\\Exception\\StreamException",
            ErrorKind::Timeout => "Quicpro\\Exception\\TimeoutException",
            ErrorKind::Server => "Quicpro\\Exception\\ServerException",
            ErrorKind::Client => "Quicpro\\Exception\\ClientException",
        }
    }

    /// The code in `getCode()` and in the `QUICPRO_ERR_*` constants.
    pub fn code(self) -> i64 {
        match self {
            ErrorKind::Config => 1,
            ErrorKind::Socket => 2,
            ErrorKind::Tls => 3,
            ErrorKind::Connection => 4,
            ErrorKind::Transport => 5,
            ErrorKind::Stream => 6,
            ErrorKind::Timeout => 7,
            ErrorKind::Server => 8,
            ErrorKind::Client => 9,
        }
    }

    pub fn constant_name(self) -> &'static str {
        match self {
            ErrorKind::Config => "QUICPRO_ERR_CONFIG",
            ErrorKind::Socket => "QUICPRO_ERR_SOCKET",
            ErrorKind::Tls => "QUICPRO_ERR_TLS",
            ErrorKind::Connection => "QUICPRO_ERR_CONNECTION",
            ErrorKind::Transport => "QUICPRO_ERR_TRANSPORT",
            ErrorKind::Stream => "QUICPRO_ERR_STREAM",
            ErrorKind::Timeout => "QUICPRO_ERR_TIMEOUT",
            ErrorKind::Server => "QUICPRO_ERR_SERVER",
            ErrorKind::Client => "QUICPRO_ERR_CLIENT",
        }
    }

    /// Parent class: transport errors are connection errors; the rest hang
    /// off the base class.
    fn parent(self) -> &'static str {
        match self {
            ErrorKind::Transport | ErrorKind::Tls => "Quicpro\\Exception\\ConnectionException",
            _ => BASE_CLASS,
        }
    }
}

/// The base of the tree; extends `\RuntimeException`.
pub const BASE_CLASS: &str = "Quicpro\\Exception\\QuicproException";

/// An error on its way to PHP.
#[derive(Debug, Clone)]
pub struct QpError {
    pub kind: ErrorKind,
    pub message: String,
}

impl QpError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }
}

impl From<QpError> for PhpException {
    fn from(e: QpError) -> Self {
        set_last_error(e.kind.code(), &e.message);
        match registered(e.kind.class_name()) {
            Some(ce) => PhpException::new(e.message, e.kind.code() as i32, ce),
            None => PhpException::from_message(e.message),
        }
    }
}

pub type QpResult<T> = Result<T, QpError>;

thread_local! {
    // PHP NTS runs one request thread: a thread-local is the process's
    // last error, reset by `quicpro_get_last_error(true)`.
    static LAST: RefCell<(i64, String)> = const { RefCell::new((0, String::new())) };
}

pub fn set_last_error(code: i64, message: &str) {
    LAST.with(|l| *l.borrow_mut() = (code, message.to_string()));
}

pub fn last_error() -> (i64, String) {
    LAST.with(|l| l.borrow().clone())
}

pub fn clear_last_error() {
    LAST.with(|l| *l.borrow_mut() = (0, String::new()));
}

extern "C" {
    /// SPL's `RuntimeException` (php-src ext/spl/spl_exceptions.h); SPL is
    /// always built in and starts before dynamically loaded extensions.
    static spl_ce_RuntimeException: *mut ClassEntry;
}

/// Our registered class entries, by name: filled by the registration
/// callback at module startup, read when throwing.
static CLASSES: std::sync::Mutex<Vec<(String, usize)>> = std::sync::Mutex::new(Vec::new());

fn registered(name: &str) -> Option<&'static ClassEntry> {
    let table = CLASSES.lock().ok()?;
    let (_, p) = table.iter().find(|(n, _)| n == name)?;
    // SAFETY: class entries registered with the engine live until shutdown.
    unsafe { (*p as *const ClassEntry).as_ref() }
}

macro_rules! parent_fn {
    ($name:expr) => {{
        #[allow(clippy::expect_used)]
        fn parent() -> &'static ClassEntry {
            // Parents are registered before their children (see below).
            registered($name).expect("parent exception class registered")
        }
        (parent as fn() -> &'static ClassEntry, $name)
    }};
}

fn runtime_exception() -> &'static ClassEntry {
    // SAFETY: set by SPL's MINIT, which runs before ours; never freed.
    #[allow(clippy::expect_used)]
    unsafe {
        spl_ce_RuntimeException.as_ref().expect("SPL RuntimeException")
    }
}

/// Registers the exception classes. Called from module startup (MINIT).
pub fn register_classes() -> Result<(), String> {
    fn done(ce: &'static mut ClassEntry, tables: ext_php_rs::args::ArgInfoTables) {
        // No methods: nothing borrows the (empty) tables, but the engine is
        // entitled to keep them, so they are never freed.
        std::mem::forget(tables);
        let name = ce.name().unwrap_or_default().to_string();
        if let Ok(mut t) = CLASSES.lock() {
            t.push((name, ce as *const ClassEntry as usize));
        }
    }
    ClassBuilder::new(BASE_CLASS)
        .extends((runtime_exception as fn() -> &'static ClassEntry, "RuntimeException"))
        .registration(done)
        .register()
        .map_err(|e| format!("{BASE_CLASS}: {e}"))?;
    // Parents first: ConnectionException before Transport/Tls.
    let order = [
        ErrorKind::Config,
        ErrorKind::Socket,
        ErrorKind::Connection,
        ErrorKind::Tls,
        ErrorKind::Transport,
        ErrorKind::Stream,
        ErrorKind::Timeout,
        ErrorKind::Server,
        ErrorKind::Client,
    ];
    for kind in order {
        let parent = match kind.parent() {
            "Quicpro\\Exception\\ConnectionException" => parent_fn!("Quicpro\\Exception\\ConnectionException"),
            _ => parent_fn!("Quicpro\\Exception\\QuicproException"),
        };
        ClassBuilder::new(kind.class_name()).extends(parent).registration(done).register().map_err(|e| format!("{}: {e}", kind.class_name()))?;
    }
    Ok(())
}
