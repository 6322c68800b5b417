// Package infoblox is a simulated Infoblox NIOS grid speaking WAPI v2.12
// over HTTP: a product feature for demos, offline evaluation and contract
// tests, not a mock. It keeps state (in a JSON file that survives
// restarts), validates input like the appliance, answers with the
// appliance's error shapes, and can be told to be slow or to fail.
//
// What it speaks (paths under /wapi/v2.12/):
//
//   - Authentication: HTTP Basic against the configured users; success sets
//     an ibapauth cookie that may be replayed instead of Basic;
//     POST logout ends the session. Failures are 401 with an HTML page.
//   - Objects: networkview, view (DNS), network, fixedaddress, record:host,
//     extensibleattributedef. References look like
//     record:host/<base64>:vm1.example.com/default; only the base64 part is
//     read, and a host's changes when it is renamed.
//   - POST objtype -> 201 "<ref>"; GET objtype?search -> 200 [...];
//     GET <ref> -> 200 {...}; PUT <ref> -> 200 "<ref>"; DELETE <ref> ->
//     200 "<ref>"; POST network/<ref>?_function=next_available_ip with
//     {"num":N,"exclude":[...]} -> {"ips":[...]} (reserves nothing).
//   - record:host (and fixedaddress) accept ipv4addr
//     "func:nextavailableip:<cidr>[,<netview>]" (or a network reference)
//     and the object form {"_object_function":"next_available_ip",
//     "_result_field":"ips","_object":"network","_object_parameters":{...}};
//     allocation happens under the same lock as the write, so concurrent
//     creates never receive the same address. Network and broadcast
//     addresses are skipped; host addresses and fixed addresses count as
//     used. A full network answers 400 Client.Ibap.Data "Cannot find 1
//     available IP address(es) in this network.".
//   - Search: field=value, field~=regex, field:=case-insensitive, '!'
//     negation, '<'/'>' on addresses, *EA=value; _return_fields (replace)
//     and _return_fields+ (add); _max_results (default -1000: an error past
//     1000 results; positive truncates); _paging=1&_return_as_object=1 with
//     next_page_id/_page_id; _return_as_object=1 wraps any answer in
//     {"result": ...}; GET /wapi/v2.12/?_schema lists the objects.
//   - PUT accepts extattrs (replace), extattrs+ and extattrs- (merge,
//     remove), and the same +/- forms for aliases and ipv4addrs.
//   - Extensible attributes must be defined (extensibleattributedef)
//     before use, as on the appliance: an undefined one is 400
//     "Unknown extensible attribute: <name>".
//   - Errors: {"Error":"AdmConProtoError: ...","code":"Client.Ibap.Proto","text":"..."}
//     for bad objects, fields and values; Client.Ibap.Data.Conflict for
//     duplicates; 404 Client.Ibap.Data.NotFound for unknown references
//     and views; 503 with an HTML page when FailRate strikes.
//
// Use it as an http.Handler (httptest.NewServer(srv)) or start it:
//
//	srv, err := infoblox.New(infoblox.Options{
//		StatePath: filepath.Join(dataDir, "infoblox-sim.json"),
//		Users:     map[string]string{"sas": password},
//		Networks:  []infoblox.SeedNetwork{{Network: "10.20.0.0/22"}},
//	})
//	base, err := srv.Start("127.0.0.1:0") // http://127.0.0.1:NNNN/wapi/v2.12
//	defer srv.Close()
//
// Not simulated: IPv6 (ipv6network, ipv6addrs), DNS zones (a host's zone is
// derived from its name), DHCP ranges, network containers, multi-object
// requests (POST request), permissions (every user is a superuser), XML.
package infoblox
