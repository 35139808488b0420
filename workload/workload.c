/* workload — see workload.h; format in README.md ("Workloads"). */
#include "workload/workload.h"

#include <string.h>

#include "common/yamldoc.h"

/* Context lengths beyond this are not a workload llmsim can reason about. */
#define WORKLOAD_MAX_TOKENS (1LL << 24)

llmsim_status workload_validate(const workload *w, const char *where, diag *e)
{
    if (w->prompt_len < 1 || w->prompt_len > WORKLOAD_MAX_TOKENS)
        return diag_set(e, LLMSIM_EINPUT, "%s: prompt length must be 1..%lld tokens, got %lld", where,
                        WORKLOAD_MAX_TOKENS, w->prompt_len);
    if (w->gen_len < 1 || w->gen_len > WORKLOAD_MAX_TOKENS)
        return diag_set(e, LLMSIM_EINPUT, "%s: generation length must be 1..%lld tokens, got %lld",
                        where, WORKLOAD_MAX_TOKENS, w->gen_len);
    if (w->num_prompts < 0)
        return diag_set(e, LLMSIM_EINPUT, "%s: num_prompts must not be negative", where);
    return LLMSIM_OK;
}

static llmsim_status workload_load_yaml_doc(const char *path, const char *text, workload *w, diag *e)
{
    memset(w, 0, sizeof *w);
    yd_doc doc;
    yd_map root;
    llmsim_status st = yd_open_text(&doc, &root, path, text, "the workload", "workload", 1, e);
    if (st)
        return st;
    static const char *const kinds[] = {"offline"};
    int kind = 0;
    if ((st = yd_field_enum(&root, "kind", YD_REQUIRED, kinds, 1, &kind, e)) ||
        (st = yd_field_int(&root, "prompt_len", YD_REQUIRED, 1, WORKLOAD_MAX_TOKENS, &w->prompt_len,
                           e)) ||
        (st = yd_field_int(&root, "gen_len", YD_REQUIRED, 1, WORKLOAD_MAX_TOKENS, &w->gen_len, e)) ||
        (st = yd_field_int(&root, "num_prompts", YD_OPTIONAL, 1, 1LL << 40, &w->num_prompts, e))) {
        yd_map_discard(&root);
        yd_free(&doc);
        return st;
    }
    st = yd_map_close(&root, e);
    yd_free(&doc);
    return st;
}

void workload_save(const workload *w, strbuf *b)
{
    strbuf_printf(b, "llmsim: workload/1\nkind: offline\nprompt_len: %lld\ngen_len: %lld\n",
                  w->prompt_len, w->gen_len);
    if (w->num_prompts)
        strbuf_printf(b, "num_prompts: %lld\n", w->num_prompts);
}

llmsim_status workload_load_yaml(const char *path, workload *w, diag *e)
{
    return workload_load_yaml_doc(path, NULL, w, e);
}

llmsim_status workload_load_yaml_text(const char *name, const char *text, workload *w, diag *e)
{
    return workload_load_yaml_doc(name, text, w, e);
}
