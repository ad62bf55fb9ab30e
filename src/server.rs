//! The composition root: opens the event store, rebuilds the views from it, starts the actor
//! arbiter and serves every service on one HTTP listener until told to shut down.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_http::HttpMessage;
use actix_web::{web, App, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use crate::aws::scope::credential_scope;
use crate::aws::{json, AwsError, RequestContext};
use crate::checkpoint::Checkpointer;
use crate::codepipeline::actions::{ActionRegistry, Services};
use crate::codepipeline::actors::execution::ExecutionRegistry;
use crate::codepipeline::actors::PipelineRegistry;
use crate::codepipeline::views::executions::{ExecutionViews, Role};
use crate::codepipeline::views::PipelineViews;
use crate::codepipeline::{self, CodePipelineService};
use crate::config::Config;
use crate::eventstore::EventStore;
use crate::gateway::{self, Service};
use crate::iam::{self, Iam};
use crate::projections::Projections;
use crate::s3::objects::ObjectStore;
use crate::s3::remote::{RemoteConfig, RemoteStore};
use crate::s3::store::LocalStore;
use crate::s3::S3Service;

struct AppState {
    config: Config,
    codepipeline: CodePipelineService,
    /// The embedded S3; `None` when an external S3 is configured.
    s3: Option<S3Service>,
    iam: Arc<Iam>,
    codebuild: Arc<crate::codebuild::CodeBuild>,
    lambda: Arc<crate::lambda::Lambda>,
    alarms: Arc<crate::cloudwatch::Alarms>,
    connections: Arc<crate::connections::Connections>,
    codecommit: Arc<crate::codecommit::CodeCommit>,
    events: Arc<crate::events::Events>,
    ssm: Arc<crate::ssm::ParameterStore>,
    ecr: Arc<crate::ecr::Ecr>,
    /// The OCI registry over ECR's repositories.
    registry: crate::ecr::registry::Registry,
    ecs: Arc<crate::ecs::Ecs>,
    codedeploy: Arc<crate::codedeploy::CodeDeploy>,
    cloudformation: Arc<crate::cloudformation::CloudFormation>,
    /// The embedded S3's store, for CloudFormation's buckets; `None` with an external S3.
    local_s3: Option<Arc<LocalStore>>,
    /// The object store pipelines use (Lambda reads function code from it).
    objects: Arc<dyn ObjectStore>,
}

/// Serves until `shutdown` resolves, then stops gracefully (in-flight requests finish).
///
/// `on_ready` is called with the bound address once the data is loaded and requests are served.
pub async fn run(
    config: Config,
    listener: TcpListener,
    on_ready: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + 'static,
) -> Result<(), String> {
    let started = Instant::now();
    let ip = listener.local_addr().map_err(|e| e.to_string())?.ip();
    if config.run_builds && !ip.is_loopback() && !config.allow_builds_on_non_loopback {
        return Err(format!(
            "refusing to listen on {ip} with CodeBuild builds on: a build runs commands on this \
             machine, and anyone who reaches {ip} could start one. Listen on 127.0.0.1, or set \
             run_builds = false, or allow_builds_on_non_loopback = true if that is intended"
        ));
    }
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("cannot create data dir {}: {e}", config.data_dir.display()))?;
    let store: Arc<dyn EventStore> = crate::eventstore::open(
        &config.data_dir.join("events"),
        Some(config.engine),
        config.cache_mb << 20,
    )?;
    // The console's live pages wake when the log grows.
    let (store, appended) = crate::eventstore::announcing::Announcing::wrap(store);
    log::debug!(
        "event store opened in {:.1} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let views = Arc::new(PipelineViews::new());
    let objects = Arc::new(
        LocalStore::open(&config.data_dir.join("s3"), store.clone())
            .map_err(|e| format!("cannot open the object store: {e:?}"))?,
    );
    let iam = Arc::new(Iam::new(store.clone()));
    let codebuild = Arc::new(crate::codebuild::CodeBuild::new(
        store.clone(),
        config.data_dir.join("codebuild"),
        config.run_builds,
        config.build_log_max_bytes,
    ));
    let execution_views = Arc::new(ExecutionViews::new(store.clone()));
    let zip_limits = crate::codepipeline::actions::archive::ZipLimits {
        max_entries: config.zip_max_entries,
        max_bytes: config.zip_max_bytes,
        max_ratio: config.zip_max_ratio,
    };
    let lambda = Arc::new(crate::lambda::Lambda::new(
        store.clone(),
        config.data_dir.join("lambda"),
        config.run_builds,
        zip_limits,
        Duration::from_secs(config.lambda_idle_seconds.max(1)),
    ));
    let custom_types = Arc::new(crate::codepipeline::custom_types::CustomActionTypes::new(
        store.clone(),
    ));
    let alarms = Arc::new(crate::cloudwatch::Alarms::new(store.clone()));
    let connections = Arc::new(crate::connections::Connections::new(store.clone()));
    let source_seen = Arc::new(crate::source_watch::seen(store.clone()));
    let webhooks = Arc::new(crate::codepipeline::webhooks::webhooks(store.clone()));
    // Pushes to CodeCommit and objects taken by the embedded S3 tell the source watch at once.
    let objects_changed = objects.objects_changed();
    let pushed = Arc::new(tokio::sync::Notify::new());
    let codecommit = Arc::new(crate::codecommit::CodeCommit::new(
        store.clone(),
        config.data_dir.join("codecommit"),
        pushed.clone(),
    ));
    let pull_requests = Arc::new(crate::connections::pull_requests::PullRequests::new(
        store.clone(),
    ));
    let events = Arc::new(crate::events::Events::new(store.clone()));
    let ssm = Arc::new(crate::ssm::ParameterStore::new(store.clone()));
    let ecr = Arc::new(crate::ecr::Ecr::new(store.clone()));
    let ecs = Arc::new(crate::ecs::Ecs::new(store.clone()));
    let codedeploy = Arc::new(crate::codedeploy::CodeDeploy::new(
        store.clone(),
        ecs.clone(),
    ));
    let cloudformation = Arc::new(crate::cloudformation::CloudFormation::new(store.clone()));
    let live = Projections {
        pipelines: views.clone(),
        executions: execution_views.clone(),
        s3: objects.clone(),
        iam: iam.clone(),
        codebuild: codebuild.clone(),
        custom_types: custom_types.clone(),
        lambda: lambda.clone(),
        alarms: alarms.clone(),
        connections: connections.clone(),
        source_seen: source_seen.clone(),
        webhooks: webhooks.clone(),
        codecommit: codecommit.clone(),
        pull_requests: pull_requests.clone(),
        events: events.clone(),
        ssm: ssm.clone(),
        cloudformation: cloudformation.clone(),
        ecr: ecr.clone(),
        ecs: ecs.clone(),
        codedeploy: codedeploy.clone(),
    };
    let checkpoint_file = crate::checkpoint::file(&config.data_dir);
    let loaded = crate::checkpoint::load(store.as_ref(), &checkpoint_file, &live.all())
        .map_err(|e| e.to_string())?;
    // Just folded in log order, before anything runs, the live projections are what a
    // checkpoint's own fold would make: after a long fold (a checkpoint of an older version, or
    // none), write them now rather than have the background checkpoint fold the log once more.
    let checkpointed = if loaded.folded >= config.checkpoint_min_events.max(1) {
        match crate::checkpoint::save(
            store.as_ref(),
            &checkpoint_file,
            &live.all(),
            loaded.position,
        ) {
            Ok(()) => loaded.position,
            Err(e) => {
                log::warn!("{e}");
                loaded.from
            }
        }
    } else {
        loaded.from
    };
    drop(live);
    store.release_memory().map_err(|e| e.to_string())?;
    let interrupted = codebuild
        .recover()
        .map_err(|e| format!("cannot end interrupted builds: {e}"))?;
    if interrupted > 0 {
        log::info!(
            "{interrupted} builds were interrupted by the last stop: they are marked FAILED"
        );
    }
    log::info!(
        "loaded {} pipelines from the checkpoint at event {} and {} events after it in {:.1} ms",
        views.len(),
        loaded.from,
        loaded.folded,
        started.elapsed().as_secs_f64() * 1000.0
    );
    // Checkpoints are folded from the log into projections of their own, in the background.
    let checkpoints = {
        let store = store.clone();
        let data_dir = config.data_dir.clone();
        Arc::new(Checkpointer::new(
            store.clone(),
            checkpoint_file,
            checkpointed,
            Box::new(move || {
                Projections::detached(&store, &data_dir, Role::Checkpoint).into_boxes()
            }),
        ))
    };
    let (stop_checkpoints, checkpoints_stopped) = std::sync::mpsc::channel();
    let checkpoint_thread = (config.checkpoint_interval_seconds > 0).then(|| {
        checkpoints.spawn(
            Duration::from_secs(config.checkpoint_interval_seconds),
            config.checkpoint_min_events,
            checkpoints_stopped,
        )
    });
    let workers = if config.workers == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        config.workers
    };
    let local_s3 = config.s3_endpoint.is_empty().then(|| objects.clone());
    let (pipeline_objects, s3): (Arc<dyn ObjectStore>, Option<S3Service>) =
        if config.s3_endpoint.is_empty() {
            (
                Arc::new(objects.clone()),
                Some(S3Service::new(
                    objects,
                    config.region.clone(),
                    Duration::from_secs(config.body_timeout_seconds.max(1)),
                )),
            )
        } else {
            let remote = RemoteConfig {
                endpoint: config.s3_endpoint.clone(),
                region: config.s3_region.clone(),
                access_key_id: config.s3_access_key_id.clone(),
                secret_access_key: config.s3_secret_access_key.clone(),
            };
            log::info!(
                "pipeline objects go to the external S3 at {}; S3 is not served here",
                remote.endpoint
            );
            (
                Arc::new(RemoteStore::new(
                    &remote,
                    config.data_dir.join("s3").join("tmp"),
                )),
                None,
            )
        };
    codebuild.set_objects(pipeline_objects.clone());
    codebuild.set_parameters(Arc::new(crate::ssm::BuildParameters(ssm.clone())));
    let pipeline_objects_for_lambda = pipeline_objects.clone();
    let enforce_roles = config.iam_enforce_roles;
    let execution_arbiters: Vec<actix::Arbiter> =
        (0..workers).map(|_| actix::Arbiter::new()).collect();
    // Artifacts unpacked by actions the last process ran are of no use now.
    let scratch = config.data_dir.join("tmp").join("actions");
    let _ = std::fs::remove_dir_all(&scratch);
    let actions = Arc::new(ActionRegistry::new(&Services {
        objects: pipeline_objects,
        builds: Arc::new(crate::codebuild::port::LocalBuilds(codebuild.clone())),
        scratch: scratch.clone(),
        zip_limits,
        lambda: Arc::new(crate::lambda::PipelineFunctions(lambda.clone())),
        lambda_job_timeout: Duration::from_secs(config.lambda_job_timeout_seconds),
        job_timeout: Duration::from_secs(config.job_timeout_seconds),
        alarms: Arc::new(crate::cloudwatch::RuleAlarms(alarms.clone())),
        connections: Arc::new(crate::connections::SourceConnections(connections.clone())),
        repositories: Arc::new(crate::codecommit::SourceRepositories(codecommit.clone())),
        stacks: Arc::new(crate::cloudformation::PipelineStacks(
            cloudformation.clone(),
        )),
        images: Arc::new(crate::ecr::SourceImages(ecr.clone())),
        containers: Arc::new(crate::codedeploy::PipelineContainers {
            ecs: ecs.clone(),
            codedeploy: codedeploy.clone(),
        }),
        git_repos_dir: (!config.git_repos_dir.is_empty())
            .then(|| std::path::PathBuf::from(&config.git_repos_dir)),
    }));
    let executions = Arc::new(ExecutionRegistry::new(
        execution_arbiters
            .iter()
            .map(actix::Arbiter::handle)
            .collect(),
        store.clone(),
        execution_views.clone(),
        actions.clone(),
    ));
    let (rollbacks, mut asked_rollbacks) = tokio::sync::mpsc::unbounded_channel();
    executions.ask_rollbacks_at(rollbacks);
    let registry = PipelineRegistry::new(
        store.clone(),
        vec![views.clone(), execution_views.clone()],
        executions.clone(),
        Duration::from_secs(config.actor_idle_seconds.max(1)),
    );
    for (pipeline, stage) in views.disabled_transitions() {
        executions.gates.set_transition(&pipeline, &stage, false);
    }
    let resumed = executions
        .resume_all()
        .map_err(|e| format!("cannot resume executions: {e:?}"))?;
    if resumed > 0 {
        log::info!("resumed {resumed} executions that were running");
    }
    executions.start_missing_first(&views);
    let console_history =
        crate::history::HistoryReader::new(store.clone(), views.clone(), execution_views.clone());
    let console_codebuild = codebuild.clone();
    let console_store = store.clone();
    let admin = web::Data::new(crate::admin::AdminState {
        history: crate::history::HistoryReader::new(
            store.clone(),
            views.clone(),
            execution_views.clone(),
        ),
        codebuild: codebuild.clone(),
        data_dir: config.data_dir.clone(),
        pull_requests: pull_requests.clone(),
        git_repos_dir: (!config.git_repos_dir.is_empty())
            .then(|| std::path::PathBuf::from(&config.git_repos_dir)),
    });
    let state = web::Data::new(AppState {
        codebuild,
        lambda: lambda.clone(),
        alarms,
        connections,
        codecommit,
        events: events.clone(),
        ssm: ssm.clone(),
        registry: crate::ecr::registry::Registry {
            ecr: ecr.clone(),
            dir: config.data_dir.join("ecr"),
            account: crate::aws::scope::DEFAULT_ACCOUNT.to_string(),
            region: config.region.clone(),
        },
        ecr: ecr.clone(),
        ecs: ecs.clone(),
        codedeploy: codedeploy.clone(),
        cloudformation: cloudformation.clone(),
        local_s3,
        objects: pipeline_objects_for_lambda,
        iam: iam.clone(),
        s3,
        config,
        codepipeline: CodePipelineService {
            model: codepipeline::model(),
            registry,
            views,
            store,
            iam,
            enforce_roles,
            executions,
            execution_views,
            actions,
            custom_types,
            dispatched: Default::default(),
            webhooks,
        },
    });
    {
        // Source changes start pipelines through their actors, as every start does.
        let state = state.clone();
        let repos = &state.config.git_repos_dir;
        let watch = crate::source_watch::SourceWatch::new(crate::source_watch::Sources {
            repos_dir: (!repos.is_empty()).then(|| std::path::PathBuf::from(repos)),
            objects: state.objects.clone(),
            repositories: Arc::new(crate::codecommit::SourceRepositories(
                state.codecommit.clone(),
            )),
            views: state.codepipeline.views.clone(),
            seen: source_seen,
            executions: state.codepipeline.execution_views.clone(),
            pull_requests,
            events: state.events.clone(),
        });
        let interval = Duration::from_millis(state.config.source_poll_interval_ms.max(10));
        actix_rt::spawn(async move {
            watch
                .run(
                    interval,
                    objects_changed,
                    pushed,
                    &state.codepipeline.registry,
                )
                .await;
        });
    }
    {
        // Automatic rollbacks go through the pipeline's actor, as every start does.
        let state = state.clone();
        actix_rt::spawn(async move {
            while let Some(ask) = asked_rollbacks.recv().await {
                codepipeline::rollback::run_automatic(&state.codepipeline, ask).await;
            }
        });
    }
    let retention = state.config.history_retention_days;
    if retention > 0.0 {
        let state = state.clone();
        actix_rt::spawn(async move {
            let mut every =
                tokio::time::interval(codepipeline::retention::sweep_interval(retention));
            loop {
                every.tick().await;
                let cp = &state.codepipeline;
                let expired = codepipeline::retention::sweep(
                    &cp.registry,
                    &cp.views,
                    &cp.execution_views,
                    retention,
                )
                .await;
                if expired > 0 {
                    log::info!("{expired} executions passed the history's retention");
                }
            }
        });
    }
    // CloudFormation's providers call the services in-process; operations a stop cut end now.
    state
        .cloudformation
        .set_services(Arc::new(InProcess(Arc::downgrade(
            &state.clone().into_inner(),
        ))));
    state
        .cloudformation
        .set_answer_within(state.config.cloudformation_answer_within_ms);
    state.cloudformation.recover(state.cloudformation.regions());
    // Deployments a stop left in progress reach their steady state.
    state.ecs.recover();
    state.codedeploy.recover();
    // An image pushed to ECR is an event for the rules that start pipelines.
    {
        let weak = Arc::downgrade(&state.clone().into_inner());
        state.ecr.set_on_push(Box::new(move |pushed| {
            let weak = weak.clone();
            actix_rt::spawn(async move {
                if let Some(state) = weak.upgrade() {
                    crate::events::api::image_pushed(
                        &state.events,
                        &state.codepipeline.registry,
                        pushed,
                    )
                    .await;
                }
            });
        }));
    }
    let (stop_console, console_stopping) = tokio::sync::watch::channel(false);
    let console = web::Data::new(crate::console::ConsoleState {
        api: Arc::new(ConsoleApi(Arc::downgrade(&state.clone().into_inner()))),
        history: console_history,
        codebuild: console_codebuild,
        data_dir: state.config.data_dir.clone(),
        store: console_store,
        appended,
        stopping: console_stopping,
        token: crate::console::new_token(),
        region: state.config.region.clone(),
    });
    let app_state = state.clone();
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    // Functions reach this endpoint on loopback when it listens on every address.
    let reachable = if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    };
    lambda.runtime.set_endpoint(reachable.to_string());
    {
        let lambda = lambda.clone();
        let every = Duration::from_secs((state.config.lambda_idle_seconds / 2).clamp(1, 60));
        actix_rt::spawn(async move {
            let mut every = tokio::time::interval(every);
            loop {
                every.tick().await;
                lambda.runtime.reap();
            }
        });
    }
    let builder = actix_server::Server::build()
        .workers(workers)
        .disable_signals();
    let signal = builder.graceful_shutdown_signal();
    let server = builder
        .listen("codepipeline-local", listener, move || {
            let app = App::new()
                .app_data(app_state.clone())
                .configure(|cfg| crate::admin::configure(cfg, admin.clone()))
                .configure(|cfg| crate::console::configure(cfg, console.clone()))
                .default_service(web::to(entry));
            let expect_state = app_state.clone();
            let signal = signal.clone();
            actix_http::HttpService::build()
                .graceful_shutdown_signal(move || {
                    let signal = signal.clone();
                    async move { signal.notified().await }
                })
                .client_request_timeout(HEAD_TIMEOUT)
                .client_disconnect_timeout(Duration::from_secs(1))
                // Answers are often written as a head and a streamed body; without TCP_NODELAY
                // the second small write waits for the client's delayed ACK (40 ms).
                .tcp_nodelay(true)
                .local_addr(addr)
                .expect(actix_service::fn_service(
                    move |req: actix_http::Request| {
                        let state = expect_state.clone();
                        async move { expect_continue(req, &state) }
                    },
                ))
                .finish(actix_service::map_config(app, |_| {
                    actix_web::dev::AppConfig::default()
                }))
                .tcp()
        })
        .map_err(|e| e.to_string())?
        .run();
    let handle = server.handle();
    actix_rt::spawn(async move {
        shutdown.await;
        log::info!("shutting down");
        // The console's live streams end, so that no connection holds the stop.
        let _ = stop_console.send(true);
        // Functions' processes end, and with them their held Runtime API requests.
        lambda.runtime.shutdown();
        handle.stop(true).await;
    });
    crate::allocator::after_startup();
    on_ready(addr);
    server.await.map_err(|e| e.to_string())?;
    let stopping = Instant::now();
    for arbiter in execution_arbiters {
        arbiter.stop();
        arbiter.join().ok();
    }
    // Bring the checkpoint up to the end of the log when enough happened since the last one, so
    // that the next start and offline history reads fold little.
    drop(stop_checkpoints);
    if let Some(thread) = checkpoint_thread {
        let _ = thread.join();
    }
    log::debug!(
        "stopped serving; actors stopped in {:.1} ms",
        stopping.elapsed().as_secs_f64() * 1000.0
    );
    if let Err(e) = checkpoints.run(state.config.checkpoint_min_events) {
        log::warn!("{e}");
    }
    drop(state);
    Ok(())
}

async fn entry(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    if crate::console::is_browser_visit(&req) {
        return crate::console::redirect();
    }
    if crate::ecr::registry::is_registry(&req) {
        return state.registry.serve(&req, payload).await;
    }
    let scope = credential_scope(req.headers());
    let mut ctx = RequestContext::new(scope.as_ref(), &state.config.region);
    ctx.rerun_of = req
        .headers()
        .get(crate::admin::RERUN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    ctx.host = req.connection_info().host().to_string();
    if crate::codecommit::http::is_git_request(req.path()) {
        // Git's smart HTTP protocol: clones and pushes stream, with no AWS signature.
        return crate::codecommit::http::serve(
            &state.codecommit,
            &ctx.account_id,
            &state.config.region,
            &req,
            payload,
        )
        .await;
    }
    if let Some(rest) = req
        .path()
        .strip_prefix(crate::codepipeline::webhooks::URL_PREFIX)
    {
        let rest = rest.to_string();
        let body = match read_body(&req, payload, &state.config).await {
            Ok(body) => body,
            Err(err) => return json::error(&ctx, &err),
        };
        let signature = req
            .headers()
            .get("x-hub-signature-256")
            .and_then(|v| v.to_str().ok());
        let peer = req.peer_addr().map(|a| a.ip());
        return codepipeline::api::receive_webhook(
            &state.codepipeline,
            &rest,
            signature,
            peer,
            &body,
        )
        .await;
    }
    if let Some(rest) = req
        .path()
        .strip_prefix(crate::lambda::runtime::RUNTIME_PREFIX)
    {
        return lambda_runtime(&req, payload, &state, rest.to_string()).await;
    }
    if let Some(digest) = req.path().strip_prefix(crate::lambda::CODE_PREFIX) {
        return match state.lambda.code(digest) {
            Some(zip) => HttpResponse::Ok().content_type("application/zip").body(zip),
            None => HttpResponse::NotFound().finish(),
        };
    }
    let service = gateway::route(req.path(), req.headers(), scope.as_ref());
    let target = match service {
        // S3 bodies stream (uploads may be gigabytes); they are not bound by max_body_bytes.
        Service::S3 => {
            return match &state.s3 {
                Some(s3) => s3.handle(&req, payload, scope.map(|s| s.region)).await,
                None => HttpResponse::NotImplemented().content_type("application/xml").body(format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NotImplemented</Code>\
                     <Message>S3 is not served here: codepipeline-local uses the external S3 at {}</Message></Error>",
                    state.config.s3_endpoint
                )),
            }
        }
        Service::Iam | Service::Sts | Service::CloudFormation => {
            let body = match read_body(&req, payload, &state.config).await {
                Ok(body) => body,
                // Query services answer in XML, whatever went wrong.
                Err(err) => {
                    let e = crate::aws::query::QueryError::new(
                        err.status,
                        err.code,
                        err.message,
                    );
                    return crate::aws::query::error("", &e, &ctx);
                }
            };
            let mut params = crate::aws::query::parse_form(req.query_string());
            params.extend(crate::aws::query::parse_form(&String::from_utf8_lossy(&body)));
            let action = params.get("Action").cloned().unwrap_or_default();
            // An unsigned query request is named by its Action.
            let cloudformation = service == Service::CloudFormation
                || (service == Service::Iam
                    && scope.is_none()
                    && crate::cloudformation::api::is_action(&action));
            if cloudformation {
                return crate::cloudformation::api::handle(&state.cloudformation, &ctx, &params)
                    .await;
            }
            let sts = service == Service::Sts
                || iam::api::StsOperation::from_action(&action).is_some();
            return if sts {
                iam::api::handle_sts(&state.iam, &ctx, &params).await
            } else {
                iam::api::handle_iam(&state.iam, &ctx, &params).await
            };
        }
        Service::CodePipeline { target } => target,
        Service::CodeBuild { target } => {
            let body = match read_body(&req, payload, &state.config).await {
                Ok(body) => body,
                Err(err) => return json::error(&ctx, &err),
            };
            return crate::codebuild::api::handle(&state.codebuild, &ctx, &target, &body).await;
        }
        Service::Lambda => {
            let body = match read_body(&req, payload, &state.config).await {
                Ok(body) => body,
                Err(err) => return json::error(&ctx, &err),
            };
            let query: std::collections::BTreeMap<String, String> =
                crate::aws::query::parse_form(req.query_string())
                    .into_iter()
                    .collect();
            let header = |name: &str| {
                req.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let request = crate::lambda::api::LambdaRequest {
                method: req.method().as_str(),
                path: req.path(),
                query,
                header: &header,
                body,
            };
            return crate::lambda::api::handle(&state.lambda, state.objects.as_ref(), &ctx, request)
                .await;
        }
        Service::Connections { flavour, target } => {
            let body = match read_body(&req, payload, &state.config).await {
                Ok(body) => body,
                Err(err) => return json::error(&ctx, &err),
            };
            return crate::connections::api::handle(&state.connections, &ctx, flavour, &target, &body)
                .await;
        }
        Service::Ssm { target } => {
            let body = match read_body(&req, payload, &state.config).await {
                Ok(body) => body,
                Err(err) => return json::error(&ctx, &err),
            };
            return crate::ssm::api::handle(&state.ssm, &ctx, &target, &body).await;
        }
        Service::Ecr { target } => {
            let body = match read_body(&req, payload, &state.config).await {
                Ok(body) => body,
                Err(err) => return json::error(&ctx, &err),
            };
            return crate::ecr::api::handle(&state.ecr, &ctx, &target, &body).await;
        }
        Service::Ecs { target } => {
            let body = match read_body(&req, payload, &state.config).await {
                Ok(body) => body,
                Err(err) => return json::error(&ctx, &err),
            };
            return crate::ecs::api::handle(&state.ecs, &ctx, &target, &body).await;
        }
        Service::CodeDeploy { target } => {
            let body = match read_body(&req, payload, &state.config).await {
                Ok(body) => body,
                Err(err) => return json::error(&ctx, &err),
            };
            return crate::codedeploy::api::handle(&state.codedeploy, &ctx, &target, &body).await;
        }
        Service::Events { target } => {
            let body = match read_body(&req, payload, &state.config).await {
                Ok(body) => body,
                Err(err) => return json::error(&ctx, &err),
            };
            return crate::events::api::handle(
                &state.events,
                &state.codepipeline.registry,
                &ctx,
                &target,
                &body,
            )
            .await;
        }
        Service::CodeCommit { target } => {
            let body = match read_body(&req, payload, &state.config).await {
                Ok(body) => body,
                Err(err) => return json::error(&ctx, &err),
            };
            return crate::codecommit::api::handle(&state.codecommit, &ctx, &target, &body).await;
        }
        Service::CloudWatch => {
            let body = match read_body(&req, payload, &state.config).await {
                Ok(body) => body,
                Err(err) => return json::error(&ctx, &err),
            };
            return cloudwatch(&req, &state, &ctx, &body).await;
        }
        Service::Unknown(name) => return unknown_service(&req, &ctx, &name),
    };
    let body = match read_body(&req, payload, &state.config).await {
        Ok(body) => body,
        Err(err) => return json::error(&ctx, &err),
    };
    codepipeline::api::handle(&state.codepipeline, &ctx, &target, &body).await
}

/// Answers a CloudWatch request in the protocol it came in.
async fn cloudwatch(
    req: &HttpRequest,
    state: &AppState,
    ctx: &RequestContext,
    body: &[u8],
) -> HttpResponse {
    use crate::cloudwatch::api::{CloudWatchRequest, Protocol};
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let target = header("x-amz-target");
    let protocol = if req.path().starts_with("/service/") {
        Protocol::Cbor
    } else if !target.is_empty() {
        Protocol::Json
    } else {
        Protocol::Query
    };
    let mut params = std::collections::BTreeMap::new();
    if protocol == Protocol::Query {
        params = crate::aws::query::parse_form(req.query_string());
        params.extend(crate::aws::query::parse_form(&String::from_utf8_lossy(
            body,
        )));
    }
    let request = CloudWatchRequest {
        protocol,
        path: req.path(),
        target,
        params,
        body,
    };
    crate::cloudwatch::api::handle(&state.alarms, ctx, request).await
}

/// Serves the Lambda Runtime API to the functions' processes.
async fn lambda_runtime(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    rest: String,
) -> HttpResponse {
    // A response may be up to 6 MB; nothing beyond a little more is read.
    let mut body = web::BytesMut::new();
    let mut too_large = false;
    let mut payload = payload;
    while let Some(chunk) = payload.next().await {
        let Ok(chunk) = chunk else {
            return HttpResponse::BadRequest().finish();
        };
        too_large |= body.len() + chunk.len() > crate::lambda::runtime::MAX_RESPONSE_BYTES;
        if too_large {
            // Read to the end, keeping nothing more.
            body.clear();
            continue;
        }
        body.extend_from_slice(&chunk);
    }
    let answer = state
        .lambda
        .runtime
        .serve(req.method().as_str(), &rest, body.freeze(), too_large)
        .await;
    let mut response = HttpResponse::build(
        actix_web::http::StatusCode::from_u16(answer.status)
            .unwrap_or(actix_web::http::StatusCode::OK),
    );
    response.content_type("application/json");
    for (name, value) in answer.headers {
        response.insert_header((name, value));
    }
    response.body(answer.body)
}

/// REST services whose clients read JSON errors; the other REST services read XML.
const REST_JSON_SERVICES: &[&str] = &[
    "lambda",
    "apigateway",
    "execute-api",
    "eks",
    "batch",
    "elasticfilesystem",
    "appsync",
    "iot",
];

/// A request for a service this endpoint does not serve: an error naming it, in the shape its
/// client parses (JSON for JSON services, `<ErrorResponse>` for query ones, `<Error>` for REST-XML
/// ones), so that the AWS CLI, the SDKs and the CDK report it rather than a parse failure.
fn unknown_service(req: &HttpRequest, ctx: &RequestContext, name: &str) -> HttpResponse {
    let message = format!("codepipeline-local does not serve the service {name}");
    let code = "UnknownServiceException";
    let header = |h: &str| {
        req.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let content_type = header("content-type");
    let json_client = !header("x-amz-target").is_empty()
        || content_type.contains("json")
        || REST_JSON_SERVICES.contains(&name);
    if json_client {
        return json::error(ctx, &AwsError::new(code, message));
    }
    let query = content_type.starts_with("application/x-www-form-urlencoded")
        || req.query_string().contains("Action=");
    if query {
        let e = crate::aws::query::QueryError::new(400, code, message);
        return crate::aws::query::error("", &e, ctx);
    }
    crate::aws::query::rest_error(&crate::aws::query::QueryError::new(400, code, message), ctx)
}

/// Answers a request that asks `Expect: 100-continue` before its body is sent: one whose
/// declared body is over `max_body_bytes` is refused at once, in its protocol's shape, rather than
/// invited to send a body that would be refused. S3 bodies stream and are not bound by it.
fn expect_continue(
    req: actix_http::Request,
    state: &AppState,
) -> Result<actix_http::Request, actix_web::Error> {
    let limit = state.config.max_body_bytes;
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_none_or(|n| n <= limit as u64) {
        return Ok(req);
    }
    let scope = credential_scope(req.headers());
    let ctx = RequestContext::new(scope.as_ref(), &state.config.region);
    let answer = match gateway::route(req.path(), req.headers(), scope.as_ref()) {
        Service::S3 | Service::Unknown(_) => return Ok(req),
        Service::Iam | Service::Sts | Service::CloudFormation => {
            let err = too_large(limit);
            let e = crate::aws::query::QueryError::new(err.status, err.code, err.message);
            crate::aws::query::error("", &e, &ctx)
        }
        Service::CodePipeline { .. }
        | Service::CodeBuild { .. }
        | Service::Lambda
        | Service::CloudWatch
        | Service::CodeCommit { .. }
        | Service::Events { .. }
        | Service::Ssm { .. }
        | Service::Ecr { .. }
        | Service::Ecs { .. }
        | Service::CodeDeploy { .. }
        | Service::Connections { .. } => json::error(&ctx, &too_large(limit)),
    };
    Err(actix_web::error::InternalError::from_response("request body too large", answer).into())
}

fn too_large(limit: usize) -> AwsError {
    AwsError::new(
        "RequestEntityTooLargeException",
        format!("The request body is larger than the limit of {limit} bytes (max_body_bytes)"),
    )
    .with_status(413)
}

/// How long a new connection may take to send its first request's head before it is answered
/// 408 and closed. Browsers open connections ahead of need (Chromium keeps such an unused one up
/// to 10 s) and send nothing on them until a page asks: a shorter limit answers a click on the
/// console with "HTTP ERROR 408". A slow client is still let go within this bound.
const HEAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads the body of a JSON or query request: up to `max_body_bytes` (a larger one is refused
/// without reading it all), within `body_timeout_seconds` (a client that sends too slowly is
/// answered and let go rather than holding a connection and a buffer).
async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    config: &Config,
) -> Result<web::Bytes, AwsError> {
    let seconds = config.body_timeout_seconds.max(1);
    let read = read_body_within(req, payload, config.max_body_bytes);
    tokio::time::timeout(Duration::from_secs(seconds), read)
        .await
        .unwrap_or_else(|_| {
            Err(AwsError::new(
                "RequestTimeoutException",
                format!(
                    "The request body did not arrive within {seconds} s (body_timeout_seconds)"
                ),
            )
            .with_status(408))
        })
}

async fn read_body_within(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, AwsError> {
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    // The declared length only sizes the first buffer, and only up to 64 KiB: a client that
    // declares megabytes and sends nothing must not make the server hold them.
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(64 << 10));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            AwsError::serialization(format!("could not read the request body: {e}"))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// The services as CloudFormation's providers call them: each operation through the code its
/// API runs (a weak link: the state owns CloudFormation).
struct InProcess(std::sync::Weak<AppState>);

impl crate::cloudformation::providers::Services for InProcess {
    fn call<'a>(
        &'a self,
        ctx: &'a RequestContext,
        service: &'static str,
        operation: &'static str,
        input: serde_json::Value,
    ) -> futures_util::future::BoxFuture<
        'a,
        Result<serde_json::Value, crate::cloudformation::providers::CallError>,
    > {
        use crate::cloudformation::providers::CallError;
        Box::pin(async move {
            let aws = |e: crate::aws::AwsError| CallError {
                code: e.code,
                message: e.message,
            };
            let query = |e: crate::aws::query::QueryError| CallError {
                code: e.code,
                message: e.message,
            };
            let state = self.0.upgrade().ok_or_else(|| CallError {
                code: "ServiceUnavailable".into(),
                message: "the server is stopping".into(),
            })?;
            match service {
                "s3" => s3_call(state.local_s3.as_deref(), ctx, operation, &input).await,
                "iam" => iam::api::call(&state.iam, ctx, operation, &input)
                    .await
                    .map_err(query),
                "codedeploy" => {
                    crate::codedeploy::api::call(&state.codedeploy, ctx, operation, &input)
                        .await
                        .map_err(aws)
                }
                "ecs" => crate::ecs::api::call(&state.ecs, ctx, operation, &input)
                    .await
                    .map_err(aws),
                "ecr" => crate::ecr::api::call(&state.ecr, ctx, operation, &input)
                    .await
                    .map_err(aws),
                "ssm" => crate::ssm::api::call(&state.ssm, ctx, operation, &input)
                    .await
                    .map_err(aws),
                "lambda" => {
                    let objects = state.objects.as_ref();
                    crate::lambda::api::call(&state.lambda, objects, ctx, operation, &input)
                        .await
                        .map_err(aws)
                }
                "events" => {
                    let registry = &state.codepipeline.registry;
                    crate::events::api::call(&state.events, registry, ctx, operation, &input)
                        .await
                        .map_err(aws)
                }
                "codebuild" => {
                    crate::codebuild::api::call(&state.codebuild, ctx, operation, &input)
                        .await
                        .map_err(aws)
                }
                "codepipeline" => {
                    codepipeline::api::call(&state.codepipeline, ctx, operation, &input)
                        .await
                        .map_err(aws)
                }
                other => Err(CallError {
                    code: "NotImplemented".into(),
                    message: format!("{other} is not served to CloudFormation"),
                }),
            }
        })
    }
}

/// CodePipeline's operations as the console calls them: through the code the API runs (a weak
/// link: the state owns the console's routes).
struct ConsoleApi(std::sync::Weak<AppState>);

impl crate::console::PipelineApi for ConsoleApi {
    fn call<'a>(
        &'a self,
        region: &'a str,
        operation: &'a str,
        input: serde_json::Value,
    ) -> futures_util::future::BoxFuture<'a, Result<serde_json::Value, crate::console::ApiError>>
    {
        Box::pin(async move {
            let state = self.0.upgrade().ok_or_else(|| {
                (
                    "ServiceUnavailable".to_string(),
                    "the server is stopping".to_string(),
                )
            })?;
            let ctx = RequestContext::new(None, region);
            codepipeline::api::call(&state.codepipeline, &ctx, operation, &input)
                .await
                .map_err(|e| (e.code, e.message))
        })
    }
}

/// The bucket operations CloudFormation's providers use, on the embedded S3's store.
async fn s3_call(
    store: Option<&LocalStore>,
    ctx: &RequestContext,
    operation: &str,
    input: &serde_json::Value,
) -> Result<serde_json::Value, crate::cloudformation::providers::CallError> {
    use crate::cloudformation::providers::CallError;
    use crate::s3::store::S3StoreError;
    let Some(store) = store else {
        return Err(CallError {
            code: "NotImplemented".into(),
            message: "S3 is external: CloudFormation makes buckets only in the embedded S3".into(),
        });
    };
    let bucket = input["Bucket"].as_str().unwrap_or_default();
    let failed = |e: S3StoreError| {
        let (code, message) = match e {
            S3StoreError::NoSuchBucket => (
                "NoSuchBucket",
                format!("The specified bucket does not exist: {bucket}"),
            ),
            S3StoreError::BucketAlreadyOwnedByYou => (
                "BucketAlreadyOwnedByYou",
                format!("{bucket} already exists"),
            ),
            S3StoreError::BucketNotEmpty => (
                "BucketNotEmpty",
                format!("The bucket you tried to delete is not empty: {bucket}"),
            ),
            S3StoreError::NoSuchKey => {
                ("NoSuchKey", "The specified key does not exist.".to_string())
            }
            other => ("InternalError", format!("{other:?}")),
        };
        CallError {
            code: code.into(),
            message,
        }
    };
    match operation {
        "CreateBucket" => {
            let valid = (3..=63).contains(&bucket.len())
                && bucket
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
                && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
                && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
            if !valid {
                return Err(CallError {
                    code: "InvalidBucketName".into(),
                    message: format!("The specified bucket is not valid: {bucket}"),
                });
            }
            store
                .create_bucket(bucket, &ctx.region)
                .await
                .map_err(failed)?;
        }
        "DeleteBucket" => store.delete_bucket(bucket).await.map_err(failed)?,
        "HeadBucket" => drop(store.bucket(bucket).map_err(failed)?),
        "PutBucketVersioning" => {
            let enabled = input["VersioningConfiguration"]["Status"] == "Enabled";
            store
                .set_versioning(bucket, enabled)
                .await
                .map_err(failed)?;
        }
        "GetObject" => {
            let key = input["Key"].as_str().unwrap_or_default();
            let (version, path) = store.get_object(bucket, key, None).map_err(failed)?;
            // Templates are small: a larger object is refused before it is read.
            if version.size > crate::cloudformation::template::MAX_URL_BODY_BYTES as u64 {
                return Err(CallError {
                    code: "ValidationError".into(),
                    message: "Template may not exceed 1000000 bytes in size.".into(),
                });
            }
            let bytes = std::fs::read(&path).map_err(|e| CallError {
                code: "InternalError".into(),
                message: e.to_string(),
            })?;
            return Ok(serde_json::json!({"Body": String::from_utf8_lossy(&bytes)}));
        }
        other => {
            return Err(CallError {
                code: "NotImplemented".into(),
                message: format!("S3 {other} is not served to CloudFormation"),
            })
        }
    }
    Ok(serde_json::json!({}))
}
