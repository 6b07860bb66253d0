use anyhow::Result;
use clap::Args;
#[derive(Args, Debug)]
pub struct DemoArgs {}
pub fn run(_cli: &super::Cli, _a: &DemoArgs) -> Result<()> {
    Ok(())
}
