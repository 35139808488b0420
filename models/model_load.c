/*
 * model_load — resolve a --model spec (a config.json, a YAML file or a
 * shipped name) and load it with the importer it names. Sits above model.c
 * (YAML) and model_hf.c (config.json), which do not call each other.
 */
#include <stdbool.h>
#include <string.h>

#include "common/datadir.h"
#include "models/model.h"

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

llmsim_status model_load(const char *spec, model *m, diag *e)
{
    if (ends_with(spec, ".json"))
        return model_load_hf_config(spec, m, e);
    char buf[1024];
    const char *path = datadir_resolve("models/configs", spec, ".yaml", buf, sizeof buf);
    if (path)
        return model_load_yaml(path, m, e);
    return datadir_unknown(e, model_shipped_names,
                           "--model '%s': not a shipped model, a YAML file or a config.json; "
                           "shipped models",
                           spec);
}
