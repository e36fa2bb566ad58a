package pkg

import "path/filepath"

var base = "somewhere"

var (
	a = filepath.Join("..", "..", "shared", "marketplace")
	b = "../../shared/openapi/saasapi.v2.json"
	c = filepath.Join(base, "..", "shared")
	d = "/work/shared/marketplace/API.md"
	e = "~/saasengine/data"
)

// The rest is in ../../elsewhere, beside the checkout.
