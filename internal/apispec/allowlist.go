package apispec

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// The allow-list: where Microsoft's OpenAPI files are known to disagree with the documented or observed API.
// Every entry says why; keep it short.

// fixDocument mends the files' own mistakes before they are validated as OpenAPI documents.
func fixDocument(doc *openapi3.T) {
	// The AADToken client-credentials flow omits "scopes", which OpenAPI 3.0 requires (it may be empty).
	for _, ref := range doc.Components.SecuritySchemes {
		if f := ref.Value.Flows; f != nil && f.ClientCredentials != nil && f.ClientCredentials.Scopes == nil {
			f.ClientCredentials.Scopes = map[string]string{}
		}
	}
}

// allowedResponse reports responses the files do not list but Microsoft documents or sends.
func allowedResponse(ex *Exchange) bool {
	switch {
	case ex.Status == http.StatusTooManyRequests:
		// Throttling with Retry-After is real (commercial-marketplace-client-dotnet #14) but in neither file.
		return true
	case ex.Status >= 500:
		// The files list only 500; gateways answer 502/503/504 too, and all mean "retry".
		return true
	case ex.Status == http.StatusConflict && (ex.OperationID == "FulfillmentOperations_DeleteSubscription" || ex.OperationID == "FulfillmentOperations_UpdateSubscription"):
		// "locked due to pending operation(s)": documented for DELETE since 12/2022, observed for PATCH.
		return true
	case ex.Status == http.StatusBadRequest && (ex.OperationID == "FulfillmentOperations_ListAvailablePlans" || ex.OperationID == "FulfillmentOperations_GetSubscription" || ex.OperationID == "FulfillmentOperations_ListSubscriptions" || ex.OperationID == "MeteringOperations_GetUsageEvent"):
		// A missing or wrong api-version is a 400 on every path, whatever each path lists; so is a List
		// continuationToken that is not one the API issued (the file lists only 200/403/500 for List).
		return strings.Contains(string(ex.RespBody), "ApiVersion") ||
			(ex.OperationID == "FulfillmentOperations_ListSubscriptions" && ex.URL.Query().Get("continuationToken") != "")
	}
	return false
}

// normalizePath maps documented spellings onto the files': the docs (and real @nextLink values) use
// /saas/subscriptions without the trailing slash the OpenAPI file has.
func normalizePath(p string) string {
	if strings.HasSuffix(p, "/api/saas/subscriptions") {
		return p + "/"
	}
	return p
}

// formatValidators turn on the string formats the files use but kin-openapi leaves unchecked by default.
var formatValidators = []openapi3.SchemaValidationOption{
	openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC9562)),
	openapi3.WithStringFormatValidator("email", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForEmail)),
	openapi3.WithStringFormatValidator("uri", uriFormat),
}

var uriPattern = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*://[^\s]+$`)

var uriFormat = openapi3.NewCallbackValidator(func(s string) error {
	if !uriPattern.MatchString(s) {
		return &openapi3.SchemaError{Reason: "not an absolute URI"}
	}
	return nil
})
