//! The terminal handed to $EDITOR, and stderr kept off the screen while the console draws.

use crate::error::{AppError, Result};

/// Edits `text` in $VISUAL / $EDITOR (else `vi`) through a private temporary file. The caller
/// has handed the terminal over (left raw mode and the alternate screen) and takes it back.
pub fn edit_text(text: &str) -> Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .ok()
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "vi".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let path = std::env::temp_dir().join(format!(
        "mailroom-compose-{}-{nanos}.txt",
        std::process::id()
    ));
    let local = |what: &str, e: std::io::Error| {
        AppError::local(
            what.to_string(),
            e.to_string(),
            "set TMPDIR to a writable directory",
        )
    };
    {
        // 0600 and create_new: a draft may be private, and nobody may pre-plant the file.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| local("cannot create a file for the editor", e))?;
        f.write_all(text.as_bytes())
            .map_err(|e| local("cannot write the draft for the editor", e))?;
    }
    // Through the shell, so EDITOR may carry arguments ("code --wait", "emacs -nw").
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(&path)
        .status();
    let result = match status {
        Ok(s) if s.success() => {
            std::fs::read_to_string(&path).map_err(|e| local("cannot read the draft back", e))
        }
        Ok(s) => Err(AppError::needs_user(
            format!("the editor exited with {s}"),
            editor.clone(),
            "the body was left unchanged; check $EDITOR",
        )),
        Err(e) => Err(AppError::needs_user(
            format!("cannot run the editor {editor:?}"),
            e.to_string(),
            "set $EDITOR to an installed editor",
        )),
    };
    let _ = std::fs::remove_file(&path);
    result
}

/// While the console owns the screen, anything written to stderr (a library's warning, a log
/// line) would land in the middle of the drawing. This points fd 2 at `<home>/logs/console.log`
/// (0600) and puts it back when dropped; the console's panic hook (`tui::panic`) puts it back
/// with `restore_stderr` before it prints.
pub struct StderrToFile {
    saved: i32,
}

static SAVED_STDERR: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

impl StderrToFile {
    pub fn start(home: &crate::config::Home) -> Option<StderrToFile> {
        use std::os::fd::AsRawFd;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = home.log_dir();
        std::fs::create_dir_all(&dir).ok()?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(dir.join(CONSOLE_LOG))
            .ok()?;
        // SAFETY: plain descriptor calls on descriptors we own; failures are checked.
        let saved = unsafe { libc::dup(2) };
        if saved < 0 {
            return None;
        }
        if unsafe { libc::dup2(file.as_raw_fd(), 2) } < 0 {
            unsafe { libc::close(saved) };
            return None;
        }
        SAVED_STDERR.store(saved, std::sync::atomic::Ordering::SeqCst);
        Some(StderrToFile { saved })
    }
}

/// The file under the home's log directory that stderr goes to while the console draws.
pub const CONSOLE_LOG: &str = "console.log";

/// Whether stderr goes to the console log right now.
pub fn stderr_redirected() -> bool {
    SAVED_STDERR.load(std::sync::atomic::Ordering::SeqCst) >= 0
}

/// Points fd 2 back at what it was before `StderrToFile::start`; once, however often called.
pub fn restore_stderr() {
    let saved = SAVED_STDERR.swap(-1, std::sync::atomic::Ordering::SeqCst);
    if saved >= 0 {
        // SAFETY: `saved` is the duplicate taken in `start`, restored exactly once.
        unsafe {
            libc::dup2(saved, 2);
            libc::close(saved);
        }
    }
}

impl Drop for StderrToFile {
    fn drop(&mut self) {
        let _ = self.saved;
        restore_stderr();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_goes_to_the_console_log_and_comes_back() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let home = crate::config::Home {
            root: dir.path().to_path_buf(),
        };
        let guard = StderrToFile::start(&home).expect("redirected");
        std::io::stderr().write_all(b"a library warning\n").unwrap();
        drop(guard);
        let log = std::fs::read_to_string(home.log_dir().join("console.log")).unwrap();
        assert_eq!(log, "a library warning\n");
        // fd 2 is the original again: nothing more lands in the file.
        std::io::stderr().write_all(b"").unwrap();
        let again = std::fs::read_to_string(home.log_dir().join("console.log")).unwrap();
        assert_eq!(again, log);
    }
}
