//! QR codes of a text result (the provisioning URI): drawn in the terminal,
//! or written as PNG or SVG files.
//!
//! Terminal rendering: two modules per character cell with the half blocks
//! `▀ ▄ █` and space, a 4-module quiet zone, and explicit ANSI colours —
//! black foreground on a white background (SGR 30;47) around every line —
//! so the code reads the same on dark and light terminal themes: dark
//! modules are always drawn with the black foreground, light modules and the
//! quiet zone are always the white background. (Drawing light modules as
//! blocks in the default colour would show an inverted code on light
//! themes, which many scanners refuse.) With `NO_COLOR` set the colours are
//! left out and the code is drawn inverted for dark terminals: light modules
//! as blocks, dark modules as spaces.
//!
//! The text is a provisioning URI, so everything made from it carries the
//! secret: the module matrix, the terminal drawing, the PNG and SVG bytes
//! are all wiped when dropped, and the matrix's `Debug` shows only its size.
//! (The `qrcode` and `png` crates' own working buffers are theirs; what we
//! can reach, we wipe.)

use std::io::Write;
use std::path::Path;

use qrcode::{Color, QrCode};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Modules of white space around the code (ISO/IEC 18004 asks for 4).
pub const QUIET_ZONE: usize = 4;
/// Pixels per module in PNG files.
pub const PNG_SCALE: usize = api::qr::MODULE_PIXELS as usize;

/// Why a QR code could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("cannot encode a QR code: {0}")]
    Encode(#[from] qrcode::types::QrError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot encode PNG: {0}")]
    Png(#[from] png::EncodingError),
    /// The path names something other than a regular file (or nothing).
    #[error("refusing to write {path}: it is {kind}; only regular files are written or replaced")]
    NotAFile { path: String, kind: &'static str },
}

/// The code's modules, with the quiet zone: `true` is dark. Wiped on drop;
/// `Debug` shows the size only (the modules spell the secret).
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct Matrix {
    pub size: usize,
    dark: Vec<bool>,
}

impl std::fmt::Debug for Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matrix")
            .field("size", &self.size)
            .field("dark", &"<redacted>")
            .finish()
    }
}

impl Matrix {
    pub fn encode(text: &str) -> Result<Self, QrError> {
        let code = QrCode::new(text.as_bytes())?;
        let width = code.width();
        let size = width + 2 * QUIET_ZONE;
        let mut dark = vec![false; size * size];
        let mut colors = code.to_colors();
        for (i, color) in colors.iter_mut().enumerate() {
            let (x, y) = (i % width + QUIET_ZONE, i / width + QUIET_ZONE);
            dark[y * size + x] = *color == Color::Dark;
            // Our copy of the modules is cleared as it is read (`Color` has
            // no `Zeroize`); `black_box` keeps the stores from being
            // optimised away before the drop.
            *color = Color::Light;
        }
        std::hint::black_box(&mut colors);
        Ok(Self { size, dark })
    }

    /// Whether the module at (`x`, `y`) is dark; outside is light.
    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        x < self.size && y < self.size && self.dark[y * self.size + x]
    }
}

/// How the terminal drawing shows colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Palette {
    /// Black on white, explicit ANSI colours (the default).
    Ansi,
    /// No escape codes; light modules drawn as blocks (for dark terminals).
    Inverted,
}

impl Palette {
    /// `Inverted` when `NO_COLOR` is set (<https://no-color.org>), else `Ansi`.
    pub fn from_env() -> Self {
        if std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()) {
            Self::Inverted
        } else {
            Self::Ansi
        }
    }
}

const ANSI_ON: &str = "\x1b[30;47m";
const ANSI_OFF: &str = "\x1b[0m";

/// The code drawn with half blocks, one text line per two module rows.
pub fn terminal(matrix: &Matrix, palette: Palette) -> Zeroizing<String> {
    // Sized up front so that growing never leaves a copy behind: per module
    // pair one half block (3 bytes), per line the colour codes and `\n`.
    let lines = matrix.size.div_ceil(2);
    let per_line = matrix.size * 3 + ANSI_ON.len() + ANSI_OFF.len() + 1;
    let mut out = Zeroizing::new(String::with_capacity(lines * per_line));
    for y in (0..matrix.size).step_by(2) {
        if palette == Palette::Ansi {
            out.push_str(ANSI_ON);
        }
        for x in 0..matrix.size {
            let (top, bottom) = (matrix.is_dark(x, y), matrix.is_dark(x, y + 1));
            // Ansi: ink is dark modules; Inverted: ink is light modules.
            let (top, bottom) = match palette {
                Palette::Ansi => (top, bottom),
                Palette::Inverted => (!top, y + 1 < matrix.size && !bottom),
            };
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        if palette == Palette::Ansi {
            out.push_str(ANSI_OFF);
        }
        out.push('\n');
    }
    out
}

/// 8-bit grayscale PNG, `PNG_SCALE` pixels per module.
pub fn png_bytes(matrix: &Matrix) -> Result<Zeroizing<Vec<u8>>, QrError> {
    let side = matrix.size * PNG_SCALE;
    let mut pixels = Zeroizing::new(Vec::with_capacity(side * side));
    for py in 0..side {
        for px in 0..side {
            pixels.push(if matrix.is_dark(px / PNG_SCALE, py / PNG_SCALE) {
                0
            } else {
                255
            });
        }
    }
    let side32 = u32::try_from(side).unwrap_or(u32::MAX);
    let mut bytes = Zeroizing::new(Vec::new());
    let mut encoder = png::Encoder::new(&mut *bytes, side32, side32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(bytes)
}

/// An SVG document (the API's renderer, shared with the QR methods).
pub fn svg_text(text: &str) -> Result<Zeroizing<String>, QrError> {
    Ok(api::qr::svg(text)?)
}

/// What a path names, for refusals: a regular file or nothing is `None`.
fn not_a_file(file_type: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    Some(if file_type.is_file() {
        return None;
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    })
}

/// Checks that `path` may be written by [`write_atomic`]: it names nothing
/// yet, or a regular file (a final symbolic link is never followed, even
/// to a regular file). Nothing is written.
pub fn check_target(path: &Path) -> Result<(), QrError> {
    let shown = || path.display().to_string();
    // "dir/" names a directory even when "dir" does not exist.
    if path.as_os_str().as_encoded_bytes().ends_with(b"/") {
        return Err(QrError::NotAFile {
            path: shown(),
            kind: "a directory",
        });
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) => match not_a_file(meta.file_type()) {
            None => Ok(()),
            Some(kind) => Err(QrError::NotAFile {
                path: shown(),
                kind,
            }),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(QrError::Write {
            path: shown(),
            source,
        }),
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory (mode 0600: the code holds the secret), synced, then renamed
/// over `path`. Only a regular file is replaced: a symbolic link (to
/// anything, or dangling), a device, a FIFO, a socket or a directory is
/// refused by name and left as it was (see [`check_target`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), QrError> {
    use std::os::unix::fs::PermissionsExt;
    check_target(path)?;
    let err = |source| QrError::Write {
        path: path.display().to_string(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    // The temporary file is ours, not the user's: a failure to make it is
    // told about the target (its own name would only puzzle).
    if !dir.is_dir() {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no directory {}", dir.display()),
        )));
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".tfa-")
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| err(std::io::Error::from(e.kind())))?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    // Checked again right before the rename, which would replace whatever
    // the name then points to (the temporary file is removed on error).
    check_target(path)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    // The rename itself is made durable with the directory.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a terminal drawing back into modules.
    fn decode(drawing: &str, palette: Palette, size: usize) -> Matrix {
        let mut dark = vec![false; size * size];
        for (row, line) in drawing.lines().enumerate() {
            let line = line.strip_prefix(ANSI_ON).unwrap_or(line);
            let line = line.strip_suffix(ANSI_OFF).unwrap_or(line);
            assert_eq!(line.chars().count(), size, "line {row}");
            for (x, c) in line.chars().enumerate() {
                let (top, bottom) = match c {
                    '█' => (true, true),
                    '▀' => (true, false),
                    '▄' => (false, true),
                    ' ' => (false, false),
                    other => panic!("unexpected {other:?}"),
                };
                let (top, bottom) = if palette == Palette::Inverted {
                    (!top, !bottom)
                } else {
                    (top, bottom)
                };
                dark[2 * row * size + x] = top;
                if 2 * row + 1 < size {
                    dark[(2 * row + 1) * size + x] = bottom;
                }
            }
        }
        Matrix { size, dark }
    }

    #[test]
    fn terminal_drawing_round_trips() {
        let m = Matrix::encode("otpauth://totp/iXsystems:nas%40TrueNAS?secret=JBSWY3DPEHPK3PXP")
            .unwrap();
        for palette in [Palette::Ansi, Palette::Inverted] {
            let drawing = terminal(&m, palette);
            assert_eq!(drawing.lines().count(), m.size.div_ceil(2));
            assert_eq!(decode(&drawing, palette, m.size), m, "{palette:?}");
        }
        assert!(
            terminal(&m, Palette::Ansi)
                .lines()
                .all(|l| l.starts_with(ANSI_ON) && l.ends_with(ANSI_OFF))
        );
        assert!(!terminal(&m, Palette::Inverted).contains('\x1b'));
    }

    #[test]
    fn quiet_zone_is_light() {
        let m = Matrix::encode("hello").unwrap();
        for i in 0..m.size {
            for q in 0..QUIET_ZONE {
                assert!(!m.is_dark(i, q) && !m.is_dark(q, i));
                assert!(!m.is_dark(i, m.size - 1 - q) && !m.is_dark(m.size - 1 - q, i));
            }
        }
        // The finder pattern's corner starts right after the quiet zone.
        assert!(m.is_dark(QUIET_ZONE, QUIET_ZONE));
    }

    #[test]
    fn the_matrix_debug_shows_its_size_only() {
        let m = Matrix::encode("otpauth://totp/x?secret=GEZDGNBVGY3TQOJQ").unwrap();
        let shown = format!("{m:?}");
        assert!(shown.contains(&format!("size: {}", m.size)), "{shown}");
        assert!(
            !shown.contains("true") && !shown.contains("false"),
            "{shown}"
        );
    }

    #[test]
    fn png_and_svg() {
        let m = Matrix::encode("hello").unwrap();
        let png = png_bytes(&m).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let svg = svg_text("hello").unwrap();
        assert!(svg.contains("<svg"), "{}", svg.as_str());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.png");
        write_atomic(&path, &png).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), *png);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
        // A missing directory: the message names the target, not the
        // temporary file.
        let target = dir.path().join("missing/q.png");
        let err = write_atomic(&target, &png).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "cannot write {}: no directory {}",
                target.display(),
                dir.path().join("missing").display()
            )
        );
        assert!(!err.contains(".tfa-"), "{err}");
    }

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    fn refused(path: &Path, kind: &str) {
        match write_atomic(path, b"secret") {
            Err(e @ QrError::NotAFile { .. }) => {
                let message = e.to_string();
                assert!(
                    message.contains(&path.display().to_string()) && message.contains(kind),
                    "{message}"
                );
            }
            other => panic!("{}: {other:?}", path.display()),
        }
    }

    /// Only regular files are written: links, FIFOs, devices, sockets and
    /// directories are refused by name and left alone, and no temporary
    /// file is left behind.
    #[test]
    fn only_regular_files_are_written() {
        use std::os::unix::fs::{FileTypeExt, symlink};
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();

        // New file: 0600, whatever the umask allows.
        let new = d.join("new.svg");
        write_atomic(&new, b"one").unwrap();
        assert_eq!(std::fs::read(&new).unwrap(), b"one");
        assert_eq!(mode(&new), 0o600);

        // Existing regular file (0644, hard-linked): replaced by a new inode,
        // so the other name still holds the old content.
        let old = d.join("old.png");
        std::fs::write(&old, b"before").unwrap();
        std::fs::set_permissions(&old, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        std::fs::hard_link(&old, d.join("old-link")).unwrap();
        write_atomic(&old, b"after").unwrap();
        assert_eq!(std::fs::read(&old).unwrap(), b"after");
        assert_eq!(mode(&old), 0o600);
        assert_eq!(std::fs::read(d.join("old-link")).unwrap(), b"before");

        // A symbolic link to a regular file, and a dangling one.
        let target = d.join("target");
        std::fs::write(&target, b"target").unwrap();
        symlink(&target, d.join("to-file")).unwrap();
        refused(&d.join("to-file"), "a symbolic link");
        assert_eq!(std::fs::read(&target).unwrap(), b"target");
        assert!(
            std::fs::symlink_metadata(d.join("to-file"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        symlink(d.join("nowhere"), d.join("dangling")).unwrap();
        refused(&d.join("dangling"), "a symbolic link");
        assert!(!d.join("nowhere").exists());

        // A FIFO (opening it for writing would block).
        let fifo = d.join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        refused(&fifo, "a FIFO");
        assert!(
            std::fs::symlink_metadata(&fifo)
                .unwrap()
                .file_type()
                .is_fifo()
        );

        // A character device, where it always is.
        let null = Path::new("/dev/null");
        refused(null, "a character device");
        assert!(
            std::fs::symlink_metadata(null)
                .unwrap()
                .file_type()
                .is_char_device()
        );

        // A directory, named plainly or with a slash.
        std::fs::create_dir(d.join("sub")).unwrap();
        refused(&d.join("sub"), "a directory");
        refused(
            Path::new(&format!("{}/absent/", d.display())),
            "a directory",
        );

        // A Unix socket.
        let sock = d.join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        refused(&sock, "a socket");

        // Nothing else appeared: no temporary files.
        let mut names: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "dangling", "fifo", "new.svg", "old-link", "old.png", "sock", "sub", "target",
                "to-file"
            ]
        );
    }
}
