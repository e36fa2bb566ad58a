package subscription

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
)

// RegisterSearchAttributes adds to namespace the subscription's search attributes it lacks, through the
// operator service of any Temporal deployment: `starter setup` on a real cluster, cmd/allinone on its own
// (a namespace made by an earlier version gains the attributes added since).
func RegisterSearchAttributes(ctx context.Context, op operatorservice.OperatorServiceClient, namespace string) error {
	want := SearchAttributes()
	have, err := op.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes: %w", err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range want {
		if cur, ok := have.GetCustomAttributes()[name]; ok {
			if cur != typ {
				return fmt.Errorf("search attribute %s exists as %s, want %s", name, cur, typ)
			}
			continue
		}
		missing[name] = typ
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := op.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing}); err != nil {
		return fmt.Errorf("add search attributes: %w", err)
	}
	return nil
}
