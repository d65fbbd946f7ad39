/// mimalloc instead of glibc's malloc: sync allocates on the network thread and frees on the
/// writer thread for every message, which glibc pays for with arena locks (see docs/sync.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(mailroom::cli::main(mailroom::tui::open));
}
