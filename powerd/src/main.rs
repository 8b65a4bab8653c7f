fn main() -> anyhow::Result<()> {
    anyhow::bail!("powerd: not implemented yet")
}
