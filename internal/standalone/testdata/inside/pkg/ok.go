package pkg

import "path/filepath"

// Look-alikes that stay inside: Operation-Location: .../operations/{operationId}?api-version=...
var (
	a = filepath.Join("..", "other", "testdata")
	b = "../other/file.json"
	c = ".."
	d = "/api/saas/subscriptions/"
	e = "https://marketplaceapi.microsoft.com/api/saas"
	f = filepath.Join(a, "sub", "file.json")
	g = "/data"
)
