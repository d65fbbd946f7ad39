fn main() {
    std::process::exit(mailroom::cli::main());
}
