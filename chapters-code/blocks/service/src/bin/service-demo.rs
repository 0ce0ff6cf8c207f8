//! The smallest binary on the block, for the process tests: `/` answers at
//! once, `/hang` never does (a request that keeps the drain waiting).

use std::process::ExitCode;

use axum::Router;
use axum::routing::get;

fn main() -> ExitCode {
    block_service::main(0, |service| async move {
        let listening = service.bind().await?;
        // The test reads the port from this line.
        println!("listening on {}", listening.local_addr());
        let router = Router::new().route("/", get(|| async { "ok" })).route(
            "/hang",
            get(|| async {
                // The test waits for this line before it signals.
                println!("hanging");
                std::future::pending::<&'static str>().await
            }),
        );
        listening.serve(router).await?;
        println!("drained");
        Ok(())
    })
}
