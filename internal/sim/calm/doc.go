// Package calm is a simulated Nutanix Calm (NCM Self-Service) speaking the
// v3 API under /api/nutanix/v3: a product feature for the dev stack, demos
// and contract tests, not a mock. It keeps state (in a JSON file that
// survives restarts), validates input as Calm does, answers with Calm's
// shapes and error bodies, moves launches and apps through their states on
// a clock, and can be told to be slow or to fail.
//
// What it speaks:
//
//   - Authentication: HTTP Basic against Options.Users, or an
//     X-Ntnx-Api-Key header against Options.APIKeys. Failures are 401 with
//     an HTML page (not JSON) and WWW-Authenticate: Basic realm="Intent
//     Gateway", as Prism's web tier answers.
//   - POST /{projects,environments,blueprints,apps}/list and
//     POST /apps/{uuid}/app_runlogs/list with {"filter","length","offset",
//     "sort_attribute","sort_order"} -> {"api_version":"3.1","metadata":
//     {"kind","length","offset","total_matches"},"entities":[...]}.
//     length defaults to 20 and is capped at 250 (calm-dsl's page size);
//     metadata.length is the number returned. Sorting: name, creation_time
//     or _created_timestamp_usecs_ (the default, oldest first), ASCENDING
//     or DESCENDING.
//   - Filters are FIQL: ";" AND, "," OR (AND binds tighter), parentheses,
//     operators == != =cs= (contains); values are percent-decoded. An == or
//     != value with unescaped regular-expression characters is an anchored
//     pattern (calm-dsl's name==.*[w|W][e|E][b|B].* form). Selectors:
//     name, uuid, state everywhere; project_reference (uuid) and
//     project_name on environments, blueprints and apps; blueprint_name,
//     blueprint_uuid, owner and _state on apps; type, root_reference,
//     parent_reference, application_reference and action_name on runlogs.
//     An unknown selector or a syntax error is 400. Comparisons are
//     case-sensitive: blueprint states are upper case (ACTIVE, DRAFT),
//     app states lower case (running, deleted).
//   - GET /blueprints/{uuid}, GET /blueprints/{uuid}/runtime_editables,
//     POST /blueprints/{uuid}/simple_launch -> {"status":{"request_id"}},
//     GET /blueprints/{uuid}/pending_launches/{id} -> {"status":{"state",
//     "application_uuid","app_name","bp_uuid","bp_name"}}: running for
//     LaunchTime, then success (or failure, with status.message_list).
//   - GET /apps/{uuid}; DELETE /apps/{uuid}[?type=soft] ->
//     {"status":{"runlog_uuid","ergon_task_uuid"}}; POST
//     /apps/{uuid}/actions/run {"name":"action_start|action_stop|
//     action_restart"} -> {"runlog_uuid"}; POST
//     /apps/{uuid}/actions/{action_uuid}/run for the uuids in the app's
//     action_list (no custom actions exist: other uuids are 404); GET
//     /apps/{uuid}/app_runlogs/{runlog}/output -> output_list (in status
//     and at the top level), runlog_state, exit_code.
//   - Errors: {"api_version":"3.1","code":<status>,"kind":...,"state":
//     "ERROR","message_list":[{"message","reason","details"}]}; 404
//     ENTITY_NOT_FOUND for unknown uuids, 400 INVALID_UUID for malformed
//     ones, 400 INVALID_REQUEST for bad bodies and filters, 422 for
//     requests Calm refuses (details.field names the field), 409 CONFLICT
//     for a duplicate app name or an address in use, 503 with an HTML page
//     when FailRate strikes (with Retry-After when Options.RetryAfter is set).
//
// Behaviour:
//
//   - Launch checks: the blueprint is ACTIVE (otherwise 422 naming its
//     state), the profile exists (by uuid or name), every variable sent is
//     a runtime-editable variable of that profile (422 naming it), INT
//     variables are positive integers, NETWORK is a CIDR, IP_ADDRESS lies
//     in it, and no live app (or launch in flight) in the project has the
//     name (409). calm-dsl checks names client side and its issue #68
//     reports Calm refusing the launch itself; the status code Calm uses is
//     not documented, so the simulator picks 409.
//   - Apps appear (provisioning) when their launch succeeds, are running
//     after ProvisionTime (or error, when a provisioning failure was
//     injected); actions go starting/stopping/restarting for ActionTime;
//     delete goes deleting for DeleteTime, then deleted. Deleted apps stay
//     listed with state deleted and GET still answers; a second DELETE while
//     deleting returns the same runlog, a DELETE of a deleted app is 404.
//     An action from a state that does not allow it is 422 naming the state
//     (start needs stopped; stop and restart need running).
//   - Every launch, action and delete writes a root action runlog and a
//     task runlog under it (root_reference = the root's uuid): RUNNING, then
//     SUCCESS or FAILURE (ABORTED when a delete overtakes it).
//   - VMs: one per replica of each deployment of the profile, named
//     <app>-<deployment>-<index>, sized by VCPUS, MEMORY_GIB and DISK_GIB,
//     with addresses from NETWORK: IP_ADDRESS for the first VM when set,
//     then the lowest free addresses (never the network, .1 or broadcast
//     address). An address is never given twice while an app holds it; a
//     hard delete frees it, a soft delete (VMs left running) does not.
//     They appear as Calm shows them: deployment_list[].
//     substrate_configuration.element_list[] with instance_name,
//     instance_id, address, create_spec.resources and platform_data.
//   - Secrets (type SECRET, e.g. ADMIN_PASSWORD) are accepted at launch and
//     never returned: GET and list show an empty value with
//     attrs.is_secret_modified, and only their SHA-256 is kept (in memory
//     and in the state file).
//   - Time: states are worked out from stored timestamps and Options.Clock,
//     so a restart mid-launch resumes where it was and tests move time with
//     a fake clock.
//   - Failure injection: Options.LaunchFailRate, a blueprint's
//     fail_launches/fail_provisions seed flags, FailNextLaunches and
//     FailNextProvisions.
//
// Use it as an http.Handler (httptest.NewServer(srv)) or start it, over
// TLS as Prism does:
//
//	bundle, err := simtls.SelfSigned()
//	err = bundle.WriteCA(filepath.Join(dataDir, "calm-ca.pem"))
//	srv, err := calm.New(calm.Options{
//		StatePath: filepath.Join(dataDir, "calm-sim.json"),
//		Users:     map[string]string{"sas": password},
//		TLSConfig: bundle.ServerConfig,
//	})
//	root, err := srv.Start("127.0.0.1:0") // https://127.0.0.1:NNNN
//	defer srv.Close()
//
// Deliberate simplifications: one cluster, AHV VMs only, Linux; no
// marketplace, runbooks, endpoints, patches, snapshots, scaling or custom
// actions; no permissions (every user sees every project); blueprints are
// seeded, not created through the API; address conflicts and full networks
// are refused at launch (409) rather than failing the provisioning; launch
// failures create no app; the runlog output is a few lines per action.
package calm
